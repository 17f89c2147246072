//! The planner's rules, one test each: most free first and its tie-breaks, masks, stickiness,
//! tensor-split shares, unhealthy devices, refusals and their words, and the two accountings.

use super::*;

const GIB: u64 = 1 << 30;

fn gpu(index: u32, name: &str, gib: u64) -> GpuView {
    GpuView {
        index,
        uuid: format!("SIM-GPU-{index}"),
        name: name.into(),
        total_bytes: gib * GIB,
        used_bytes: 0,
        free_bytes: gib * GIB,
        utilization_pct: None,
        simulated: true,
        processes: Vec::new(),
        process_listing: Default::default(),
        errors: Vec::new(),
    }
}

/// The reference workstation: 24 GiB + 12 GiB.
fn workstation() -> Vec<GpuView> {
    vec![gpu(0, "Simulated RTX 3090", 24), gpu(1, "Simulated RTX 4070", 12)]
}

fn pool(name: &str, replicas: u32, need_gib: u64) -> PoolDemand {
    PoolDemand {
        name: name.into(),
        mask: vec![0, 1],
        gpus_per_replica: 1,
        tensor_split: None,
        replicas,
        need: need_gib * GIB,
        place: true,
    }
}

fn running(pool: &str, index: u32, gpus: &[u32]) -> Existing {
    Existing {
        pool: pool.into(),
        index,
        gpus: gpus.to_vec(),
        running: true,
        allocated: true,
    }
}

fn at(plan: &Plan, pool: &str, index: u32) -> Placement {
    plan.pools[pool][&index].clone()
}

#[test]
fn the_first_replica_goes_where_most_is_free_and_the_next_where_most_is_left() {
    let plan = plan(&workstation(), Accounting::Simulated, &[], &[pool("chat", 3, 10)]);
    assert_eq!(at(&plan, "chat", 0), Ok(vec![0]), "24 GiB free beats 12");
    assert_eq!(
        at(&plan, "chat", 1),
        Ok(vec![0]),
        "GPU 0 still has more: 14 GiB left against 12"
    );
    assert_eq!(at(&plan, "chat", 2), Ok(vec![1]), "GPU 0 has 4 GiB left, GPU 1 12");
    assert_eq!(plan.reserved, BTreeMap::from([(0, 20 * GIB), (1, 10 * GIB)]));
}

#[test]
fn equal_free_vram_goes_to_the_lower_index() {
    let gpus = vec![gpu(0, "a", 16), gpu(1, "b", 16)];
    let plan = plan(&gpus, Accounting::Simulated, &[], &[pool("chat", 1, 4)]);
    assert_eq!(at(&plan, "chat", 0), Ok(vec![0]));
}

#[test]
fn replicas_that_need_nothing_spread_over_the_mask_instead_of_piling_on_gpu_0() {
    let gpus = vec![gpu(0, "a", 16), gpu(1, "b", 16)];
    let plan = plan(&gpus, Accounting::Simulated, &[], &[pool("chat", 3, 0)]);
    assert_eq!(at(&plan, "chat", 0), Ok(vec![0]));
    assert_eq!(at(&plan, "chat", 1), Ok(vec![1]));
    assert_eq!(at(&plan, "chat", 2), Ok(vec![0]));
}

#[test]
fn a_mask_is_never_crossed_even_when_the_other_gpu_has_more_free() {
    let mut p = pool("small", 2, 7);
    p.mask = vec![1];
    let plan = plan(&workstation(), Accounting::Simulated, &[], &[p]);
    assert_eq!(at(&plan, "small", 0), Ok(vec![1]));
    let err = at(&plan, "small", 1).unwrap_err();
    assert!(
        err.contains("GPU 1 ") && !err.contains("GPU 0"),
        "only its mask is considered: {err}"
    );
}

#[test]
fn a_replica_keeps_the_gpus_its_container_has_although_another_has_more_free() {
    // chat-0 runs on GPU 1; GPU 0 has more free, but moving it would churn its spec hash.
    let plan = plan(
        &workstation(),
        Accounting::Simulated,
        &[running("chat", 0, &[1])],
        &[pool("chat", 1, 4)],
    );
    assert_eq!(at(&plan, "chat", 0), Ok(vec![1]));
    assert_eq!(plan.reserved, BTreeMap::from([(1, 4 * GIB)]), "charged once, not twice");
}

#[test]
fn stickiness_ends_when_the_mask_no_longer_includes_the_gpu() {
    let mut p = pool("chat", 1, 4);
    p.mask = vec![0];
    let plan = plan(&workstation(), Accounting::Simulated, &[running("chat", 0, &[1])], &[p]);
    assert_eq!(at(&plan, "chat", 0), Ok(vec![0]));
}

#[test]
fn stickiness_ends_when_the_gpu_reports_errors_and_that_gpu_is_never_chosen() {
    let mut gpus = workstation();
    gpus[0].errors = vec!["3 uncorrected volatile ECC errors".into()];
    let plan = plan(
        &gpus,
        Accounting::Simulated,
        &[running("chat", 0, &[0])],
        &[pool("chat", 2, 4)],
    );
    assert_eq!(at(&plan, "chat", 0), Ok(vec![1]));
    assert_eq!(at(&plan, "chat", 1), Ok(vec![1]));
}

#[test]
fn only_unhealthy_gpus_in_the_mask_is_a_refusal_naming_the_error() {
    let mut gpus = workstation();
    gpus[1].errors = vec!["GPU lost (fallen off the bus)".into()];
    let mut p = pool("chat", 1, 1);
    p.mask = vec![1];
    let err = at(&plan(&gpus, Accounting::Simulated, &[], &[p]), "chat", 0).unwrap_err();
    assert_eq!(
        err,
        "replica chat-0 needs 1 healthy GPU(s) but its mask [1] has 0: GPU 1 (Simulated RTX 4070, 12.0 GiB) \
         is unhealthy (GPU lost (fallen off the bus))"
    );
}

#[test]
fn a_stopped_container_keeps_its_gpus_only_if_they_still_fit() {
    let stopped = Existing {
        running: false,
        allocated: false,
        ..running("chat", 0, &[1])
    };
    let big = pool("big", 1, 10);
    let mut big = big;
    big.mask = vec![1];
    // `big` runs on GPU 1 and holds 10 of its 12 GiB: chat-0 (4 GiB) must move to GPU 0.
    let plan = plan(
        &workstation(),
        Accounting::Simulated,
        &[stopped, running("big", 0, &[1])],
        &[big, pool("chat", 1, 4)],
    );
    assert_eq!(at(&plan, "chat", 0), Ok(vec![0]));
}

#[test]
fn sticky_replicas_are_decided_before_new_ones_are_packed() {
    // `a` (sorted first) would take GPU 1 if it went first; the existing stopped `b-0` keeps it.
    let stopped = Existing {
        running: false,
        allocated: false,
        ..running("b", 0, &[1])
    };
    let mut a = pool("a", 1, 10);
    a.mask = vec![1];
    let mut b = pool("b", 1, 10);
    b.mask = vec![1];
    let plan = plan(&workstation(), Accounting::Simulated, &[stopped], &[a, b]);
    assert_eq!(at(&plan, "b", 0), Ok(vec![1]));
    assert!(at(&plan, "a", 0).is_err());
}

#[test]
fn over_commit_is_refused_naming_the_replica_each_gpu_its_free_vram_and_the_shortfall() {
    let plan = plan(
        &workstation(),
        Accounting::Simulated,
        &[running("big", 0, &[0])],
        &[pool("big", 1, 24), pool("chat", 2, 11)],
    );
    assert_eq!(at(&plan, "chat", 0), Ok(vec![1]));
    let err = at(&plan, "chat", 1).unwrap_err();
    assert_eq!(
        err,
        "replica chat-1 needs 11.0 GiB on 1 GPU; GPU 1 (Simulated RTX 4070, 12.0 GiB) has 1.0 GiB free — short \
         by 10.0 GiB; GPU 0 (Simulated RTX 3090, 24.0 GiB) is full — short by 11.0 GiB. Not started: free VRAM on these GPUs, \
         lower ctxSize or slotsPerReplica, or allow more GPUs in spec.gpus"
    );
    assert_eq!(
        plan.reserved,
        BTreeMap::from([(0, 24 * GIB), (1, 11 * GIB)]),
        "no charge for a refusal"
    );
}

#[test]
fn an_even_split_is_capped_by_the_smallest_gpu() {
    let mut p = pool("wide", 1, 26);
    p.gpus_per_replica = 2;
    let err = at(
        &plan(&workstation(), Accounting::Simulated, &[], &[p.clone()]),
        "wide",
        0,
    )
    .unwrap_err();
    assert!(
        err.starts_with("replica wide-0 needs 26.0 GiB on 2 GPUs (13.0 GiB each); "),
        "{err}"
    );
    assert!(
        err.contains("GPU 1 (Simulated RTX 4070, 12.0 GiB) has 12.0 GiB free — short by 1.0 GiB"),
        "{err}"
    );
    assert!(err.contains("GPU 0 (Simulated RTX 3090, 24.0 GiB) has room (24.0 GiB free for 13.0 GiB)"));
    p.need = 24 * GIB;
    let plan = plan(&workstation(), Accounting::Simulated, &[], &[p]);
    assert_eq!(at(&plan, "wide", 0), Ok(vec![0, 1]));
    assert_eq!(plan.reserved, BTreeMap::from([(0, 12 * GIB), (1, 12 * GIB)]));
}

#[test]
fn a_tensor_split_charges_each_gpu_its_weighted_share() {
    let mut p = pool("wide", 1, 30);
    p.gpus_per_replica = 2;
    p.tensor_split = Some(vec![2, 1]);
    let plan = plan(&workstation(), Accounting::Simulated, &[], &[p.clone()]);
    assert_eq!(
        at(&plan, "wide", 0),
        Ok(vec![0, 1]),
        "20 GiB on GPU 0, 10 on GPU 1: fits"
    );
    assert_eq!(plan.reserved, BTreeMap::from([(0, 20 * GIB), (1, 10 * GIB)]));
    // Evenly, 15 GiB would not fit on the 12 GiB GPU.
    p.tensor_split = None;
    assert!(
        at(
            &super::plan(&workstation(), Accounting::Simulated, &[], &[p]),
            "wide",
            0
        )
        .is_err()
    );
}

#[test]
fn a_tensor_split_that_overflows_names_the_gpu_and_its_share() {
    let mut p = pool("wide", 1, 33);
    p.gpus_per_replica = 2;
    p.tensor_split = Some(vec![1, 2]);
    let err = at(&plan(&workstation(), Accounting::Simulated, &[], &[p]), "wide", 0).unwrap_err();
    assert!(
        err.starts_with("replica wide-0 needs 33.0 GiB on 2 GPUs (tensorSplit 1,2: 11.0 GiB + 22.0 GiB); "),
        "{err}"
    );
    assert!(err.contains("GPU 1 (Simulated RTX 4070, 12.0 GiB) has 12.0 GiB free — short by 10.0 GiB"));
}

#[test]
fn with_uneven_shares_another_set_is_tried_when_the_most_free_one_does_not_fit() {
    // Free: GPU 0 = 10, GPU 1 = 20, GPU 2 = 18. Most free = {1, 2} → shares 2:1 put 20 GiB on
    // GPU 1 and 10 on GPU 2: fits. With 1:2 it puts 20 on GPU 2 (18 free): no; {0, 1} fits.
    let gpus = vec![gpu(0, "a", 10), gpu(1, "b", 20), gpu(2, "c", 18)];
    let mut p = pool("wide", 1, 30);
    p.mask = vec![0, 1, 2];
    p.gpus_per_replica = 2;
    p.tensor_split = Some(vec![2, 1]);
    assert_eq!(
        at(&plan(&gpus, Accounting::Simulated, &[], &[p.clone()]), "wide", 0),
        Ok(vec![1, 2])
    );
    p.tensor_split = Some(vec![1, 2]);
    assert_eq!(
        at(&plan(&gpus, Accounting::Simulated, &[], &[p]), "wide", 0),
        Ok(vec![0, 1])
    );
}

#[test]
fn measured_gpus_count_ready_replicas_through_nvml_and_charge_only_those_still_loading() {
    let mut gpus = workstation();
    // NVML already sees chat-0's 10 GiB on GPU 0; chat-1 on GPU 1 is starting (nothing yet).
    gpus[0].used_bytes = 10 * GIB;
    gpus[0].free_bytes = 14 * GIB;
    let loading = Existing {
        allocated: false,
        ..running("chat", 1, &[1])
    };
    let plan = plan(
        &gpus,
        Accounting::Measured,
        &[running("chat", 0, &[0]), loading],
        &[pool("chat", 2, 10), pool("more", 1, 3)],
    );
    // Ledger: GPU 0 = 14 free, GPU 1 = 12 - 10 = 2: `more` goes to GPU 0.
    assert_eq!(at(&plan, "more", 0), Ok(vec![0]));
    assert_eq!(plan.reserved, BTreeMap::from([(0, 13 * GIB), (1, 10 * GIB)]));
}

#[test]
fn a_blocked_pools_containers_are_charged_but_nothing_is_placed_for_it() {
    let mut blocked = pool("blocked", 2, 20);
    blocked.place = false;
    let plan = plan(
        &workstation(),
        Accounting::Simulated,
        &[running("blocked", 0, &[0])],
        &[blocked, pool("chat", 1, 6)],
    );
    assert!(!plan.pools.contains_key("blocked"));
    assert_eq!(at(&plan, "chat", 0), Ok(vec![1]), "GPU 0 has 4 GiB left");
}

#[test]
fn the_plan_is_the_same_whatever_order_the_pools_come_in() {
    let a = [pool("b", 2, 8), pool("a", 2, 8)];
    let b = [pool("a", 2, 8), pool("b", 2, 8)];
    assert_eq!(
        plan(&workstation(), Accounting::Simulated, &[], &a),
        plan(&workstation(), Accounting::Simulated, &[], &b)
    );
}

#[test]
fn mask_checks_and_gpu_errors_read_as_sentences() {
    assert!(check_mask(&[0], 1).is_ok());
    assert_eq!(
        check_mask(&[], 1).unwrap_err().to_string(),
        "the Pool's GPU selection is empty"
    );
    assert_eq!(
        check_mask(&[0], 2).unwrap_err().to_string(),
        "gpusPerReplica is 2 but only 1 GPU(s) are selected"
    );
    let gpus = workstation();
    assert_eq!(
        mask_problem(&gpus, &[0, 7], 1).unwrap_err().to_string(),
        "GPU 7 does not exist; this host has [0, 1] (see `orchctl get gpus`)"
    );
    assert_eq!(
        mask_problem(&[], &[0], 1).unwrap_err().to_string(),
        "GPU 0 does not exist; this host has none (see `orchctl get gpus`)"
    );
    assert_eq!(
        mask_problem(&gpus, &[0], 2).unwrap_err().to_string(),
        "cannot place replicas: gpusPerReplica is 2 but only 1 GPU(s) are selected (spec.gpus / spec.gpusPerReplica)"
    );
    let mut gpus = workstation();
    assert_eq!(gpu_errors(&gpus, &[0, 1]), None);
    gpus[1].errors = vec!["2 uncorrected volatile ECC errors".into()];
    assert_eq!(
        gpu_errors(&gpus, &[1]).as_deref(),
        Some("GPU 1 (Simulated RTX 4070, 12.0 GiB): 2 uncorrected volatile ECC errors")
    );
    assert_eq!(gpu_errors(&gpus, &[0]), None);
    assert_eq!(
        gpu_errors(&gpus[..1], &[0, 1]).as_deref(),
        Some(
            "GPU 1: no longer in the GPU inventory (1 GPU(s) listed now); check `nvidia-smi -L` and `dmesg` for \
             Xid errors"
        ),
        "a GPU that is gone is as broken as one with errors"
    );
}

#[test]
fn combinations_come_in_order() {
    let all: Vec<Vec<u32>> = combinations(&[5, 6, 7], 2).collect();
    assert_eq!(all, [vec![5, 6], vec![5, 7], vec![6, 7]]);
    assert_eq!(combinations(&[1], 2).count(), 0);
}
