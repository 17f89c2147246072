//! A container's main process as Docker and Podman report it on inspect (`State.Pid`, in the
//! host's PID namespace; 0 when it does not run). Pure: reads answers, asks nothing.

use bollard::models::ContainerInspectResponse;

/// The host pid of a running container's main process; `None` when it does not run.
pub fn pid_of(i: &ContainerInspectResponse) -> Option<u32> {
    let pid = i.state.as_ref()?.pid?;
    u32::try_from(pid).ok().filter(|p| *p > 0)
}

/// [`pid_of`] for an answer bollard could not read whole (Podman's extra states): only
/// `State.Pid` is looked at.
pub fn pid_leniently(raw: &str) -> Option<u32> {
    let value: serde_json::Value = serde_json::from_str(raw).ok()?;
    let pid = value.get("State")?.get("Pid")?.as_u64()?;
    u32::try_from(pid).ok().filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn inspected(raw: &str) -> ContainerInspectResponse {
        serde_json::from_str(raw).unwrap()
    }

    #[test]
    fn a_running_container_has_its_host_pid_and_an_exited_one_none() {
        let docker = include_str!("fixtures/docker-inspect-running.json");
        let podman = include_str!("fixtures/podman-inspect-running.json");
        assert_eq!(pid_of(&inspected(docker)), Some(12829));
        assert_eq!(pid_of(&inspected(podman)), Some(13162));
        assert_eq!(pid_leniently(podman), Some(13162));
        let exited = include_str!("fixtures/docker-inspect-exited.json");
        assert_eq!(pid_of(&inspected(exited)), None, "Pid 0 is no process");
        assert_eq!(pid_leniently(include_str!("fixtures/podman-inspect-exited.json")), None);
        assert_eq!(pid_leniently("{}"), None);
    }
}
