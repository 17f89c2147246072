//! Setting Kubernetes-style conditions while keeping each one's last transition time. It only
//! writes conditions on a status it is handed; deciding which reason holds is the caller's job.

use llorch_manifests::Reason;
use llorch_manifests::status::{Condition, ConditionType, ObjectStatus};

use crate::state_dir::now_rfc3339;

/// Sets `type_` on `status`; the transition time changes only when `value` does.
pub fn set(status: &mut ObjectStatus, type_: ConditionType, value: bool, reason: Reason, message: impl Into<String>) {
    let message = message.into();
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != value {
                c.last_transition_time = now_rfc3339();
            }
            c.status = value;
            c.reason = reason;
            c.message = message;
        }
        None => {
            status.conditions.push(Condition {
                type_,
                status: value,
                reason,
                message,
                last_transition_time: now_rfc3339(),
            });
            status.conditions.sort_by_key(|c| c.type_);
        }
    }
}

/// Ready, not progressing, not degraded.
pub fn set_healthy(status: &mut ObjectStatus, reason: Reason, message: impl Into<String>) {
    let message = message.into();
    set(status, ConditionType::Ready, true, reason, message.clone());
    set(status, ConditionType::Progressing, false, reason, message.clone());
    set(status, ConditionType::Degraded, false, reason, message);
}

/// Not ready and degraded for `reason`.
pub fn set_failed(status: &mut ObjectStatus, reason: Reason, message: impl Into<String>) {
    let message = message.into();
    set(status, ConditionType::Ready, false, reason, message.clone());
    set(status, ConditionType::Progressing, false, reason, message.clone());
    set(status, ConditionType::Degraded, true, reason, message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use llorch_manifests::{Kind, ObjectRef};

    #[test]
    fn transition_time_moves_only_when_the_value_changes() {
        let mut s = ObjectStatus::new(ObjectRef::new(Kind::Pool, "p"));
        set(&mut s, ConditionType::Ready, false, Reason::Pending, "a");
        let t0 = s.condition(ConditionType::Ready).unwrap().last_transition_time.clone();
        std::thread::sleep(std::time::Duration::from_millis(3));
        set(&mut s, ConditionType::Ready, false, Reason::Fetching, "b");
        assert_eq!(s.condition(ConditionType::Ready).unwrap().last_transition_time, t0);
        assert_eq!(s.condition(ConditionType::Ready).unwrap().reason, Reason::Fetching);
        set(&mut s, ConditionType::Ready, true, Reason::ModelReady, "c");
        assert_ne!(s.condition(ConditionType::Ready).unwrap().last_transition_time, t0);
    }
}
