//! Pools sized by demand (`spec.scaling`): how many replicas each should run this pass. The
//! data plane reports each Pool's demand ([`DemandSource`]: tasks queued or running, and when
//! it last had any); a Pool with demand, or with some within its `idleTimeout`, runs
//! `max(minReplicas, 1)`; an idle one runs `minReplicas` — none at all for `minReplicas: 0`,
//! which frees its VRAM until a task wakes it. Each transition is an event.
//!
//! An awake Pool autoscales between `max(minReplicas, 1)` and `maxReplicas`: one more replica
//! once tasks have waited for a slot for [`SCALE_UP_AFTER`], one fewer once a replica's worth
//! of slots has been idle for `idleTimeout`; each change is an event (`ScaledUp`,
//! `ScaledDown`).
//!
//! The decision is made before placement, so a sleeping Pool reserves no VRAM, and the rest
//! of the pass sees the Pool at its decided size ([`PoolSpec::sized`]). When an activation does
//! not fit, idle Pools may be evicted for it ([`ScaleBook::evict`], decided by
//! `controller/eviction.rs`); a scale-up that does not fit is not made ([`ScaleBook::cap`]).
//!
//! [`PoolSpec::sized`]: llorch_manifests::PoolSpec::sized

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use llorch_manifests::{Pool, Reason};

/// What the data plane knows about one Pool's demand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    /// Tasks queued or running now.
    pub busy: u32,
    /// When it last had a task queued or running (a task arriving counts); none since start.
    pub last_busy: Option<SystemTime>,
    /// A wake was asked for (`orchctl wake`) and no replica has come up since: it wants one
    /// now, as if a task waited.
    pub woken: bool,
}

impl Demand {
    /// Whether it wants a replica now: a task is queued or running, or a wake was asked for.
    pub fn wants_replica(&self) -> bool {
        self.busy > 0 || self.woken
    }
}

/// The data plane's side: each Pool's demand.
pub trait DemandSource: Send + Sync {
    /// `pool`'s demand now.
    fn demand(&self, pool: &str) -> Demand;

    /// Wake the controller when any of `pools` next has nothing queued or running (an
    /// activation waits for VRAM they hold); replaces the previous list.
    fn wake_when_idle(&self, _pools: &[String]) {}
}

/// No data plane (unit tests, a controller on its own): no demand anywhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDemand;

impl DemandSource for NoDemand {
    fn demand(&self, _pool: &str) -> Demand {
        Demand::default()
    }
}

/// One Pool's size this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sized {
    /// Replicas to run.
    pub replicas: u32,
    /// True when it runs none because it is idle (`minReplicas: 0`).
    pub asleep: bool,
    /// How long until it is idle long enough to scale down, while it is awake.
    pub idle_in: Option<Duration>,
    /// An event to record: the Pool scaled to zero or was activated.
    pub event: Option<(Reason, String)>,
    /// The Pool it sleeps for, when it was evicted to make room.
    pub evicted_for: Option<String>,
}

/// What the controller remembers between passes: when each Pool was last seen busy, whether
/// it was awake, and when it was evicted (put to sleep early to make room for another).
#[derive(Debug, Default)]
pub struct ScaleBook {
    last_active: HashMap<String, SystemTime>,
    awake: HashMap<String, bool>,
    evicted: HashMap<String, (SystemTime, String)>,
    /// Activations and evictions per Pool since start.
    counts: HashMap<String, (u64, u64)>,
    /// Replicas each awake Pool runs at (autoscaled between `max(minReplicas, 1)` and
    /// `maxReplicas`), and since when tasks waited for a slot, or a replica's slots were idle.
    level: HashMap<String, u32>,
    pressure_since: HashMap<String, SystemTime>,
    slack_since: HashMap<String, SystemTime>,
}

/// How long tasks must wait for a slot before an awake Pool gets one more replica.
pub const SCALE_UP_AFTER: Duration = Duration::from_secs(5);

impl ScaleBook {
    /// Sizes `pool` (which has `spec.scaling`) from its demand; `has_containers` says whether
    /// replicas of it run now (a Pool first seen with containers — adopted after a restart —
    /// gets a full idle timeout before it is scaled down).
    pub fn size(&mut self, pool: &Pool, demand: Demand, has_containers: bool, now: SystemTime) -> Option<Sized> {
        let scaling = pool.spec.scaling.as_ref()?;
        let name = pool.name();
        let mut last = self.last_active.get(name).copied();
        if demand.wants_replica() {
            last = Some(now);
        }
        if let Some(t) = demand.last_busy {
            last = Some(last.map_or(t, |l| l.max(t)));
        }
        if last.is_none() && has_containers {
            last = Some(now);
        }
        if let Some(t) = last {
            self.last_active.insert(name.to_string(), t);
        }
        let timeout = scaling.idle_timeout.get();
        let idle_for = last.map(|t| now.duration_since(t).unwrap_or_default());
        // An evicted Pool sleeps until a task arrives after its eviction.
        let evicted = match self.evicted.get(name) {
            Some((at, _)) if !demand.wants_replica() && last.is_none_or(|l| l <= *at) => true,
            Some(_) => {
                self.evicted.remove(name);
                false
            }
            None => false,
        };
        let awake = !evicted && (demand.wants_replica() || idle_for.is_some_and(|d| d < timeout));
        let (replicas, autoscaled, recheck) = if awake {
            self.autoscale(pool, demand.busy, now)
        } else {
            self.forget_level(name);
            (scaling.min_replicas, None, None)
        };
        let was_awake = self.awake.insert(name.to_string(), awake);
        let event = match (was_awake, awake, scaling.min_replicas) {
            (Some(true), false, 0) => Some((
                Reason::ScaledToZero,
                format!(
                    "no task for {} (idleTimeout {}): its replicas are removed and its VRAM is free; the next task wakes it",
                    llorch_manifests::duration::short(idle_for.unwrap_or_default()),
                    scaling.idle_timeout
                ),
            )),
            (Some(false) | None, true, 0) if !has_containers => Some((
                Reason::Activated,
                format!("{} task(s) waiting: starting {replicas} replica(s)", demand.busy.max(1)),
            )),
            _ => autoscaled,
        };
        if event.as_ref().is_some_and(|(r, _)| *r == Reason::Activated) {
            self.counts.entry(name.to_string()).or_default().0 += 1;
        }
        Some(Sized {
            replicas,
            asleep: !awake && scaling.min_replicas == 0,
            idle_in: awake.then(|| {
                let idle_in = timeout.saturating_sub(idle_for.unwrap_or_default());
                recheck.map_or(idle_in, |r| r.min(idle_in))
            }),
            event,
            evicted_for: self.evicted.get(name).map(|(_, by)| by.clone()),
        })
    }

    /// The replicas an awake `pool` runs at with `busy` tasks queued or running: one more
    /// after tasks waited for a slot for [`SCALE_UP_AFTER`] (up to `maxReplicas`), one fewer
    /// after a replica's worth of slots was idle for `idleTimeout` (down to
    /// `max(minReplicas, 1)`); the event for a change, and when to look again.
    fn autoscale(
        &mut self,
        pool: &Pool,
        busy: u32,
        now: SystemTime,
    ) -> (u32, Option<(Reason, String)>, Option<Duration>) {
        let name = pool.name();
        let Some(scaling) = pool.spec.scaling.as_ref() else {
            return (0, None, None);
        };
        let floor = scaling.min_replicas.max(1);
        let ceiling = scaling.max_replicas.max(floor);
        let slots = pool.spec.slots_per_replica.max(1);
        let level = self.level.get(name).copied().unwrap_or(floor).clamp(floor, ceiling);
        let waited = |since: &HashMap<String, SystemTime>| {
            since
                .get(name)
                .map(|t| now.duration_since(*t).unwrap_or_default())
                .unwrap_or_default()
        };
        let mut out = (level, None, None);
        if busy > level * slots && level < ceiling {
            self.slack_since.remove(name);
            self.pressure_since.entry(name.to_string()).or_insert(now);
            let waited = waited(&self.pressure_since);
            if waited >= SCALE_UP_AFTER {
                self.pressure_since.insert(name.to_string(), now);
                out = (
                    level + 1,
                    Some((
                        Reason::ScaledUp,
                        format!(
                            "{} task(s) for {} slot(s) for {}: {} → {} replicas (maxReplicas {ceiling})",
                            busy,
                            level * slots,
                            llorch_manifests::duration::short(waited),
                            level,
                            level + 1
                        ),
                    )),
                    Some(SCALE_UP_AFTER),
                );
            } else {
                out.2 = Some(SCALE_UP_AFTER.saturating_sub(waited));
            }
        } else if level > floor && busy <= (level - 1) * slots {
            self.pressure_since.remove(name);
            self.slack_since.entry(name.to_string()).or_insert(now);
            let waited = waited(&self.slack_since);
            let cooldown = scaling.idle_timeout.get();
            if waited >= cooldown {
                self.slack_since.insert(name.to_string(), now);
                out = (
                    level - 1,
                    Some((
                        Reason::ScaledDown,
                        format!(
                            "{busy} task(s) for {} slot(s) for {} (idleTimeout {}): {} → {} replicas",
                            level * slots,
                            llorch_manifests::duration::short(waited),
                            scaling.idle_timeout,
                            level,
                            level - 1
                        ),
                    )),
                    Some(cooldown),
                );
            } else {
                out.2 = Some(cooldown.saturating_sub(waited));
            }
        } else {
            self.pressure_since.remove(name);
            self.slack_since.remove(name);
        }
        self.level.insert(name.to_string(), out.0);
        out
    }

    /// `pool` could not get the replica it scaled up to (no VRAM): it stays at `replicas`.
    pub fn cap(&mut self, pool: &str, replicas: u32) {
        self.level.insert(pool.to_string(), replicas);
    }

    fn forget_level(&mut self, pool: &str) {
        self.level.remove(pool);
        self.pressure_since.remove(pool);
        self.slack_since.remove(pool);
    }

    /// Puts `pool` to sleep now, before its idle timeout, to make room for `waking`; it stays
    /// asleep until a task for it arrives.
    pub fn evict(&mut self, pool: &str, waking: &str, now: SystemTime) {
        self.evicted.insert(pool.to_string(), (now, waking.to_string()));
        self.awake.insert(pool.to_string(), false);
        self.counts.entry(pool.to_string()).or_default().1 += 1;
    }

    /// `pool`'s activations and evictions since start.
    pub fn counts(&self, pool: &str) -> (u64, u64) {
        self.counts.get(pool).copied().unwrap_or_default()
    }

    /// When `pool` last had a task (or was first seen running), if ever.
    pub fn last_active(&self, pool: &str) -> Option<SystemTime> {
        self.last_active.get(pool).copied()
    }

    /// Forgets Pools no longer declared.
    pub fn retain(&mut self, declared: &dyn Fn(&str) -> bool) {
        self.last_active.retain(|k, _| declared(k));
        self.awake.retain(|k, _| declared(k));
        self.evicted.retain(|k, _| declared(k));
        self.counts.retain(|k, _| declared(k));
        self.level.retain(|k, _| declared(k));
        self.pressure_since.retain(|k, _| declared(k));
        self.slack_since.retain(|k, _| declared(k));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use llorch_manifests::AnyObject;

    fn pool() -> Pool {
        let text = "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: p}\nspec:\n  engine: e\n  model: m\n  scaling: {minReplicas: 0, maxReplicas: 1, idleTimeout: 10s}\n";
        match &llorch_manifests::parse_file("p.yaml", text.as_bytes()).unwrap()[0].object {
            AnyObject::Pool(p) => p.clone(),
            _ => panic!("not a pool"),
        }
    }

    #[test]
    fn a_pool_sleeps_until_a_task_then_stays_awake_for_its_idle_timeout() {
        let (p, mut book, t0) = (
            pool(),
            ScaleBook::default(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1000),
        );
        let s = book.size(&p, Demand::default(), false, t0).unwrap();
        assert_eq!(
            (s.replicas, s.asleep, s.event),
            (0, true, None),
            "never used: asleep, no event"
        );
        let busy = Demand {
            busy: 1,
            last_busy: Some(t0),
            woken: false,
        };
        let s = book.size(&p, busy, false, t0).unwrap();
        assert_eq!((s.replicas, s.asleep), (1, false));
        assert_eq!(s.event.unwrap().0, Reason::Activated);
        let quiet = Demand {
            busy: 0,
            last_busy: Some(t0),
            woken: false,
        };
        let s = book.size(&p, quiet, true, t0 + Duration::from_secs(9)).unwrap();
        assert_eq!(
            (s.replicas, s.idle_in, s.event),
            (1, Some(Duration::from_secs(1)), None)
        );
        let s = book.size(&p, quiet, true, t0 + Duration::from_secs(10)).unwrap();
        assert_eq!((s.replicas, s.asleep), (0, true));
        let (reason, message) = s.event.unwrap();
        assert_eq!(reason, Reason::ScaledToZero);
        assert!(message.contains("idleTimeout 10s"), "{message}");
    }

    #[test]
    fn adopted_replicas_get_a_full_idle_timeout_and_fixed_pools_are_not_sized() {
        let (p, mut book, t0) = (
            pool(),
            ScaleBook::default(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1000),
        );
        let s = book.size(&p, Demand::default(), true, t0).unwrap();
        assert_eq!((s.replicas, s.event), (1, None));
        let mut fixed = p.clone();
        fixed.spec.scaling = None;
        fixed.spec.replicas = Some(2);
        assert_eq!(book.size(&fixed, Demand::default(), false, t0), None);
    }

    #[test]
    fn an_awake_pool_scales_up_after_tasks_wait_and_down_after_its_idle_timeout() {
        let mut p = pool();
        p.spec.scaling.as_mut().unwrap().max_replicas = 3;
        let (mut book, t0) = (ScaleBook::default(), SystemTime::UNIX_EPOCH + Duration::from_secs(1000));
        let at = |s: u64| t0 + Duration::from_secs(s);
        let busy = |n: u32, s: u64| Demand {
            busy: n,
            last_busy: Some(at(s)),
            woken: false,
        };
        let step = |book: &mut ScaleBook, n: u32, s: u64| {
            let sized = book.size(&p, busy(n, s), true, at(s)).unwrap();
            (sized.replicas, sized.event.map(|(r, _)| r))
        };
        assert_eq!(
            step(&mut book, 3, 0),
            (1, None),
            "three tasks for one slot: waiting starts"
        );
        assert_eq!(step(&mut book, 3, 4), (1, None));
        assert_eq!(step(&mut book, 3, 5), (2, Some(Reason::ScaledUp)), "5 s of waiting");
        assert_eq!(step(&mut book, 3, 6), (2, None), "the next step waits again");
        assert_eq!(step(&mut book, 3, 10), (3, Some(Reason::ScaledUp)));
        assert_eq!(step(&mut book, 9, 20), (3, None), "maxReplicas");
        assert_eq!(
            step(&mut book, 1, 21),
            (3, None),
            "two replicas' slots idle: the cooldown starts"
        );
        assert_eq!(step(&mut book, 1, 31), (2, Some(Reason::ScaledDown)), "idleTimeout 10s");
        assert_eq!(step(&mut book, 1, 41), (1, Some(Reason::ScaledDown)));
        assert_eq!(step(&mut book, 1, 60), (1, None), "never below one while awake");
    }

    #[test]
    fn an_evicted_pool_sleeps_through_its_idle_timeout_until_its_next_task() {
        let (p, mut book, t0) = (
            pool(),
            ScaleBook::default(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1000),
        );
        let done = Demand {
            busy: 0,
            last_busy: Some(t0),
            woken: false,
        };
        assert_eq!(book.size(&p, done, true, t0).unwrap().replicas, 1);
        book.evict("p", "q", t0 + Duration::from_secs(1));
        let s = book.size(&p, done, true, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(
            (s.replicas, s.asleep, s.event),
            (0, true, None),
            "asleep within its idle timeout, and the eviction was its own event"
        );
        assert_eq!(s.evicted_for.as_deref(), Some("q"));
        let next = Demand {
            busy: 1,
            last_busy: Some(t0 + Duration::from_secs(3)),
            woken: false,
        };
        let s = book.size(&p, next, false, t0 + Duration::from_secs(3)).unwrap();
        assert_eq!((s.replicas, s.asleep), (1, false));
        assert_eq!(s.event.unwrap().0, Reason::Activated, "a task wakes it again");
        assert_eq!(s.evicted_for, None);
    }
}
