//! Turns what NVML answered about one device — each query's result, success or error — into a
//! [`GpuView`]: memory, utilisation, processes, and the driver and ECC problems that make the
//! device unhealthy. Pure, so every answer NVML can give is tested without a GPU.
//!
//! What counts as a problem (`errors`): uncorrected volatile ECC errors, memory pages pending
//! retirement, a device NVML reports lost (`GpuLost`: fallen off the bus), and any query that
//! fails for another reason. What does not: `NotSupported` (consumer boards have no ECC
//! counters; some hide processes), a symbol an older driver lacks, and `NoPermission`.

use llorch_manifests::api::{GpuProcess, GpuView, ProcessListing};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;

/// What llama-orch says about a lost GPU.
pub const GPU_LOST: &str = "GPU lost: NVML reports it has fallen off the bus or is otherwise inaccessible; \
                            check `nvidia-smi` and `dmesg` for Xid errors — a reboot is usually needed";

/// Every NVML answer about one device.
#[derive(Debug)]
pub struct Readings {
    /// `nvmlDeviceGetUUID`.
    pub uuid: Result<String, NvmlError>,
    /// `nvmlDeviceGetName`.
    pub name: Result<String, NvmlError>,
    /// `nvmlDeviceGetMemoryInfo`: (total, used, free).
    pub memory: Result<(u64, u64, u64), NvmlError>,
    /// `nvmlDeviceGetUtilizationRates`, GPU percent.
    pub utilization: Result<u32, NvmlError>,
    /// Compute processes.
    pub compute: Result<Vec<ProcessInfo>, NvmlError>,
    /// Graphics processes.
    pub graphics: Result<Vec<ProcessInfo>, NvmlError>,
    /// Uncorrected ECC errors since the driver loaded.
    pub ecc_uncorrected_volatile: Result<u64, NvmlError>,
    /// Pages waiting for retirement (need a reset or reboot).
    pub pages_pending_retirement: Result<bool, NvmlError>,
}

/// True for an answer that only means "this board or driver cannot tell".
fn unsupported(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::NotSupported
            | NvmlError::FailedToLoadSymbol(_)
            | NvmlError::NoPermission
            | NvmlError::VgpuEccNotSupported
    )
}

/// The problem an error means, if any.
fn problem(what: &str, e: &NvmlError) -> Option<String> {
    match e {
        e if unsupported(e) => None,
        NvmlError::GpuLost => Some(GPU_LOST.to_string()),
        e => Some(format!("reading its {what} through NVML failed: {e}")),
    }
}

/// A device whose handle NVML would not give: nothing is known but that it is broken.
pub fn unreadable(index: u32, e: &NvmlError) -> GpuView {
    GpuView {
        index,
        uuid: String::new(),
        name: format!("GPU {index}"),
        total_bytes: 0,
        used_bytes: 0,
        free_bytes: 0,
        utilization_pct: None,
        simulated: false,
        processes: Vec::new(),
        process_listing: ProcessListing::Failed,
        errors: vec![problem("handle", e).unwrap_or_else(|| format!("NVML gives no handle for it: {e}"))],
    }
}

/// The view of one device from its readings.
pub fn view(index: u32, r: Readings) -> GpuView {
    let mut errors: Vec<String> = Vec::new();
    fn note(errors: &mut Vec<String>, what: &str, e: &NvmlError) {
        if let Some(p) = problem(what, e)
            && !errors.contains(&p)
        {
            errors.push(p);
        }
    }
    let uuid = r.uuid.unwrap_or_else(|e| {
        note(&mut errors, "uuid", &e);
        String::new()
    });
    let name = r.name.unwrap_or_else(|e| {
        note(&mut errors, "name", &e);
        format!("GPU {index}")
    });
    let (total_bytes, used_bytes, free_bytes) = r.memory.unwrap_or_else(|e| {
        // Unknown memory is no memory: placement never picks it.
        note(&mut errors, "memory", &e);
        (0, 0, 0)
    });
    let utilization_pct = r.utilization.map_err(|e| note(&mut errors, "utilisation", &e)).ok();
    let mut processes: Vec<GpuProcess> = Vec::new();
    // Compute processes are what an engine shows up as; a graphics list NVML cannot give
    // does not make the compute list less complete.
    let process_listing = match &r.compute {
        Ok(_) => ProcessListing::Listed,
        Err(e) => listing_failure(e),
    };
    for list in [r.compute, r.graphics] {
        match list {
            Ok(list) => {
                for p in list {
                    let used = match p.used_gpu_memory {
                        UsedGpuMemory::Used(b) => Some(b),
                        UsedGpuMemory::Unavailable => None,
                    };
                    match processes.iter_mut().find(|q| q.pid == p.pid) {
                        // A process with both a compute and a graphics context is one process.
                        Some(q) => q.used_bytes = q.used_bytes.max(used),
                        None => processes.push(GpuProcess {
                            pid: p.pid,
                            used_bytes: used,
                        }),
                    }
                }
            }
            Err(e) => note(&mut errors, "processes", &e),
        }
    }
    processes.sort_by(|a, b| b.used_bytes.cmp(&a.used_bytes).then(a.pid.cmp(&b.pid)));
    match r.ecc_uncorrected_volatile {
        Ok(0) => {}
        Ok(n) => errors.push(format!(
            "{n} uncorrected ECC error(s) since the driver loaded: engines on it may compute garbage; \
             drain it and reset it (`nvidia-smi -r -i {index}`) or reboot"
        )),
        Err(e) => note(&mut errors, "ECC counters", &e),
    }
    match r.pages_pending_retirement {
        Ok(false) => {}
        Ok(true) => errors.push(format!(
            "memory pages are pending retirement: reset the GPU (`nvidia-smi -r -i {index}`) or reboot to retire them"
        )),
        Err(e) => note(&mut errors, "retired pages", &e),
    }
    GpuView {
        index,
        uuid,
        name,
        total_bytes,
        used_bytes,
        free_bytes,
        utilization_pct,
        simulated: false,
        processes,
        process_listing,
        errors,
    }
}

/// What a failed process query means for the list: it cannot be had, and why.
fn listing_failure(e: &NvmlError) -> ProcessListing {
    match e {
        NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_) => ProcessListing::NotSupported,
        NvmlError::NoPermission => ProcessListing::NoPermission,
        _ => ProcessListing::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, used: Option<u64>) -> ProcessInfo {
        ProcessInfo {
            pid,
            used_gpu_memory: used.map_or(UsedGpuMemory::Unavailable, UsedGpuMemory::Used),
            gpu_instance_id: None,
            compute_instance_id: None,
        }
    }

    /// A healthy RTX 4090 with one engine on it.
    fn healthy() -> Readings {
        Readings {
            uuid: Ok("GPU-1234".into()),
            name: Ok("NVIDIA GeForce RTX 4090".into()),
            memory: Ok((24 << 30, 10 << 30, 14 << 30)),
            utilization: Ok(37),
            compute: Ok(vec![process(4242, Some(9 << 30))]),
            graphics: Ok(vec![]),
            // A consumer board: no ECC, no page retirement.
            ecc_uncorrected_volatile: Err(NvmlError::NotSupported),
            pages_pending_retirement: Err(NvmlError::NotSupported),
        }
    }

    #[test]
    fn a_consumer_board_without_ecc_is_healthy() {
        let v = view(0, healthy());
        assert_eq!(v.errors, Vec::<String>::new());
        assert_eq!(
            (v.total_bytes, v.used_bytes, v.free_bytes),
            (24 << 30, 10 << 30, 14 << 30)
        );
        assert_eq!(v.utilization_pct, Some(37));
        assert_eq!(v.process_listing, ProcessListing::Listed);
        assert_eq!(
            v.processes,
            [GpuProcess {
                pid: 4242,
                used_bytes: Some(9 << 30)
            }]
        );
        assert!(!v.simulated);
    }

    #[test]
    fn compute_and_graphics_processes_are_merged_by_pid_and_listed_largest_first() {
        let mut r = healthy();
        r.compute = Ok(vec![process(1, Some(1 << 20)), process(2, Some(5 << 30))]);
        r.graphics = Ok(vec![process(1, Some(2 << 20)), process(3, None)]);
        let v = view(0, r);
        let pids: Vec<(u32, Option<u64>)> = v.processes.iter().map(|p| (p.pid, p.used_bytes)).collect();
        assert_eq!(pids, [(2, Some(5 << 30)), (1, Some(2 << 20)), (3, None)]);
    }

    #[test]
    fn uncorrected_ecc_errors_make_the_device_unhealthy_and_say_what_to_do() {
        let mut r = healthy();
        r.ecc_uncorrected_volatile = Ok(3);
        let v = view(1, r);
        assert_eq!(v.errors.len(), 1);
        assert!(
            v.errors[0].starts_with("3 uncorrected ECC error(s) since the driver loaded"),
            "{v:?}"
        );
        assert!(v.errors[0].contains("nvidia-smi -r -i 1"), "{v:?}");
    }

    #[test]
    fn zero_ecc_errors_and_no_pending_pages_are_healthy() {
        let mut r = healthy();
        r.ecc_uncorrected_volatile = Ok(0);
        r.pages_pending_retirement = Ok(false);
        assert!(view(0, r).errors.is_empty());
    }

    #[test]
    fn pages_pending_retirement_are_a_problem() {
        let mut r = healthy();
        r.pages_pending_retirement = Ok(true);
        assert!(view(0, r).errors[0].starts_with("memory pages are pending retirement"));
    }

    #[test]
    fn a_lost_gpu_is_reported_once_with_no_memory_to_place_on() {
        let r = Readings {
            uuid: Err(NvmlError::GpuLost),
            name: Err(NvmlError::GpuLost),
            memory: Err(NvmlError::GpuLost),
            utilization: Err(NvmlError::GpuLost),
            compute: Err(NvmlError::GpuLost),
            graphics: Err(NvmlError::GpuLost),
            ecc_uncorrected_volatile: Err(NvmlError::GpuLost),
            pages_pending_retirement: Err(NvmlError::GpuLost),
        };
        let v = view(2, r);
        assert_eq!(v.errors, [GPU_LOST]);
        assert_eq!((v.name.as_str(), v.free_bytes), ("GPU 2", 0));
    }

    #[test]
    fn a_failing_query_is_a_problem_but_unsupported_ones_and_missing_symbols_are_not() {
        let mut r = healthy();
        r.utilization = Err(NvmlError::NotSupported);
        r.graphics = Err(NvmlError::FailedToLoadSymbol(
            "nvmlDeviceGetGraphicsRunningProcesses_v3".into(),
        ));
        r.compute = Err(NvmlError::NoPermission);
        let v = view(0, r);
        assert!(v.errors.is_empty(), "{v:?}");
        assert_eq!(v.utilization_pct, None);
        assert_eq!(
            (v.processes.len(), v.process_listing),
            (0, ProcessListing::NoPermission),
            "no permission is not the same as no processes"
        );
        let mut r = healthy();
        r.memory = Err(NvmlError::Unknown);
        let v = view(0, r);
        assert_eq!(v.errors.len(), 1);
        assert!(
            v.errors[0].starts_with("reading its memory through NVML failed"),
            "{v:?}"
        );
        assert_eq!(v.total_bytes, 0);
    }

    #[test]
    fn an_unsupported_process_query_is_told_apart_from_an_empty_list() {
        let mut r = healthy();
        r.compute = Err(NvmlError::NotSupported);
        r.graphics = Err(NvmlError::NotSupported);
        let v = view(0, r);
        assert_eq!(
            (v.processes.len(), v.process_listing),
            (0, ProcessListing::NotSupported)
        );
        let mut r = healthy();
        r.compute = Ok(vec![]);
        r.graphics = Err(NvmlError::NotSupported);
        assert_eq!(view(0, r).process_listing, ProcessListing::Listed);
        let mut r = healthy();
        r.compute = Err(NvmlError::Unknown);
        let v = view(0, r);
        assert_eq!(v.process_listing, ProcessListing::Failed);
        assert_eq!(v.errors.len(), 1, "a failed query is also a problem");
    }

    #[test]
    fn a_device_without_a_handle_is_listed_as_broken() {
        let v = unreadable(1, &NvmlError::GpuLost);
        assert_eq!(v.errors, [GPU_LOST]);
        let v = unreadable(1, &NvmlError::Unknown);
        assert!(
            v.errors[0].starts_with("reading its handle through NVML failed"),
            "{v:?}"
        );
    }
}
