//! Reads Docker's and Podman's answers into the runtime's own types: container summaries and
//! inspections into [`ContainerInfo`], event messages into [`RuntimeEvent`], multiplexed log
//! frames into lines. Pure; the tests read responses captured from dockerd 20.10.24 and
//! Podman 4.3.1 (`fixtures/`).
//!
//! Where the two differ (and what is made the same):
//! - Ports: Docker drops the published port when a container stops; Podman keeps reporting it.
//!   `host_port` is only set while the container runs.
//! - Docker's inspect keeps the *requested* binding (`HostPort: ""`) in `HostConfig.PortBindings`;
//!   the allocated port is read from `NetworkSettings.Ports`, which both fill in.
//! - Names come with a leading `/` from both; it is stripped.
//! - A removed container is `destroy` on Docker and `remove` on Podman: both become `destroy`.
//!   Podman also emits `init` and `cleanup`, passed through as they are.
//! - Event attributes mix labels with `name`, `image`, `exitCode`…; the latter are dropped.
//! - Podman 4.3 lists a container as `stopped` between its `die` and its `cleanup`, and may use
//!   its own `configured`/`initialized`: bollard's strict types reject the whole answer, so it is
//!   read again leniently ([`summaries_leniently`], [`inspect_leniently`]) with those states
//!   mapped to Docker's.

use std::collections::{BTreeMap, HashMap};

use bollard::container::LogOutput;
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary, ContainerSummaryStateEnum, EventMessage,
    PortBinding, PortSummary, PortSummaryTypeEnum,
};

use super::create_body::HOST_IP;
use crate::runtime::{ContainerInfo, ContainerState, RuntimeEvent};

/// Event attributes that Docker or Podman add next to the container's labels.
const NON_LABEL_ATTRIBUTES: &[&str] = &[
    "name",
    "image",
    "exitCode",
    "containerExitCode",
    "signal",
    "podId",
    "execID",
    "execDuration",
];

/// A container from `GET /containers/json`. `None` when the summary has no id. An exited
/// container's exit code is read from its `Status` (`Exited (137) 2 seconds ago`); when that
/// fails the state is [`ContainerState::Other`] and the caller may inspect it.
pub fn from_summary(s: &ContainerSummary) -> Option<ContainerInfo> {
    let id = s.id.clone()?;
    let status = s.status.as_deref().unwrap_or_default();
    let state = match s.state {
        Some(ContainerSummaryStateEnum::CREATED) => ContainerState::Created,
        Some(ContainerSummaryStateEnum::RUNNING) => ContainerState::Running,
        Some(ContainerSummaryStateEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerSummaryStateEnum::EXITED) => match exit_code_from_status(status) {
            Some(code) => ContainerState::Exited(code),
            None => ContainerState::Other(format!("exited ({status})")),
        },
        Some(other) => ContainerState::Other(other.to_string()),
        None => ContainerState::Other(String::new()),
    };
    let host_port = if state.is_running() {
        host_port_from_summary(s.ports.as_deref().unwrap_or_default())
    } else {
        None
    };
    Some(ContainerInfo {
        id,
        name: s
            .names
            .iter()
            .flatten()
            .next()
            .map(|n| strip_slash(n))
            .unwrap_or_default(),
        labels: sorted(s.labels.as_ref()),
        state,
        host_port,
    })
}

/// A container from `GET /containers/{id}/json`. `None` when the response has no id.
pub fn from_inspect(i: &ContainerInspectResponse) -> Option<ContainerInfo> {
    let id = i.id.clone()?;
    let st = i.state.as_ref();
    let state = match st.and_then(|s| s.status) {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerStateStatusEnum::EXITED) => ContainerState::Exited(st.and_then(|s| s.exit_code).unwrap_or(-1)),
        Some(other) => ContainerState::Other(other.to_string()),
        None => ContainerState::Other(String::new()),
    };
    let ports = i.network_settings.as_ref().and_then(|n| n.ports.as_ref());
    let host_port = if state.is_running() {
        ports.and_then(host_port_from_port_map)
    } else {
        None
    };
    Some(ContainerInfo {
        id,
        name: i.name.as_deref().map(strip_slash).unwrap_or_default(),
        labels: sorted(i.config.as_ref().and_then(|c| c.labels.as_ref())),
        state,
        host_port,
    })
}

/// A lifecycle event of a container; `None` for other event types or messages without an id.
pub fn event(m: &EventMessage) -> Option<RuntimeEvent> {
    if m.typ.is_some_and(|t| t.to_string() != "container") {
        return None;
    }
    let actor = m.actor.as_ref();
    let container_id = actor.and_then(|a| a.id.clone()).filter(|id| !id.is_empty())?;
    let action = match m.action.as_deref().unwrap_or_default() {
        "remove" => "destroy",
        "died" => "die",
        other => other,
    };
    let labels = actor
        .and_then(|a| a.attributes.as_ref())
        .map(|attrs| {
            attrs
                .iter()
                .filter(|(k, _)| !NON_LABEL_ATTRIBUTES.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    Some(RuntimeEvent {
        container_id,
        action: action.to_string(),
        labels,
    })
}

/// Reads a `GET /containers/json` answer that bollard's types rejected, mapping Podman's own
/// states to Docker's; a state neither knows becomes [`ContainerState::Other`] with its name.
pub fn summaries_leniently(raw: &str) -> Result<Vec<ContainerInfo>, serde_json::Error> {
    let items: Vec<serde_json::Value> = serde_json::from_str(raw)?;
    let mut infos = Vec::with_capacity(items.len());
    for mut item in items {
        let unknown = normalize_state(item.get_mut("State"));
        let summary: ContainerSummary = serde_json::from_value(item)?;
        if let Some(mut info) = from_summary(&summary) {
            if let Some(state) = unknown {
                info.state = ContainerState::Other(state);
                info.host_port = None;
            }
            infos.push(info);
        }
    }
    Ok(infos)
}

/// Reads a `GET /containers/{id}/json` answer that bollard's types rejected, as
/// [`summaries_leniently`] does.
pub fn inspect_leniently(raw: &str) -> Result<Option<ContainerInfo>, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_str(raw)?;
    let unknown = normalize_state(value.get_mut("State").and_then(|s| s.get_mut("Status")));
    let inspected: ContainerInspectResponse = serde_json::from_value(value)?;
    Ok(from_inspect(&inspected).map(|mut info| {
        if let Some(state) = unknown {
            info.state = ContainerState::Other(state);
            info.host_port = None;
        }
        info
    }))
}

/// Rewrites a state string in place to one bollard knows. Returns the original when it had to
/// be blanked because neither Docker nor Podman defines it.
fn normalize_state(state: Option<&mut serde_json::Value>) -> Option<String> {
    const DOCKER_STATES: &[&str] = &[
        "",
        "created",
        "running",
        "paused",
        "restarting",
        "exited",
        "removing",
        "dead",
        "stopping",
    ];
    let state = state?;
    let name = state.as_str()?.to_string();
    let mapped = match name.as_str() {
        known if DOCKER_STATES.contains(&known) => return None,
        // The process is gone; Podman has not run its cleanup yet.
        "stopped" => "exited",
        "configured" | "initialized" => "created",
        _ => {
            *state = serde_json::Value::String(String::new());
            return Some(name);
        }
    };
    *state = serde_json::Value::String(mapped.to_string());
    None
}

/// `Exited (137) 2 seconds ago` → 137.
pub fn exit_code_from_status(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    let (code, _) = rest.split_once(')')?;
    code.trim().parse().ok()
}

/// The longest log line kept whole; a longer one is split.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Reassembles multiplexed log frames into lines. A frame may hold several lines or part of
/// one; stdout and stderr are assembled separately so that their partial lines never mix.
#[derive(Debug, Default)]
pub struct LogLines {
    lines: Vec<String>,
    partial_out: Vec<u8>,
    partial_err: Vec<u8>,
}

impl LogLines {
    /// Adds one frame.
    pub fn push(&mut self, frame: &LogOutput) {
        let (partial, bytes) = match frame {
            LogOutput::StdErr { message } => (&mut self.partial_err, message),
            LogOutput::StdOut { message } | LogOutput::Console { message } | LogOutput::StdIn { message } => {
                (&mut self.partial_out, message)
            }
        };
        partial.extend_from_slice(bytes);
        while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=pos).collect();
            self.lines.push(decode_line(&line));
        }
        // An engine that never ends a line must not grow this without bound.
        if partial.len() > MAX_LINE_BYTES {
            let line = std::mem::take(partial);
            self.lines.push(decode_line(&line));
        }
    }

    /// The complete lines so far, leaving partial ones (a followed log).
    pub fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }

    /// All complete lines plus any unterminated ones, keeping only the last `keep`.
    pub fn finish(mut self, keep: usize) -> Vec<String> {
        for partial in [
            std::mem::take(&mut self.partial_out),
            std::mem::take(&mut self.partial_err),
        ] {
            if !partial.is_empty() {
                self.lines.push(decode_line(&partial));
            }
        }
        let skip = self.lines.len().saturating_sub(keep);
        self.lines.split_off(skip)
    }
}

fn decode_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches(['\n', '\r'])
        .to_string()
}

fn host_port_from_summary(ports: &[PortSummary]) -> Option<u16> {
    let published = || {
        ports
            .iter()
            .filter(|p| p.typ != Some(PortSummaryTypeEnum::UDP) && p.public_port.is_some())
    };
    published()
        .find(|p| p.ip.as_deref() == Some(HOST_IP))
        .or_else(|| published().next())
        .and_then(|p| p.public_port)
}

fn host_port_from_port_map(ports: &HashMap<String, Option<Vec<PortBinding>>>) -> Option<u16> {
    let mut bindings: Vec<(&String, &PortBinding)> = ports
        .iter()
        .filter(|(key, _)| key.ends_with("/tcp"))
        .flat_map(|(key, b)| b.iter().flatten().map(move |b| (key, b)))
        .collect();
    // Deterministic choice: loopback first, then by port key.
    bindings.sort_by_key(|(key, b)| (b.host_ip.as_deref() != Some(HOST_IP), (*key).clone()));
    bindings
        .iter()
        .find_map(|(_, b)| b.host_port.as_deref().and_then(|p| p.parse().ok()))
}

fn strip_slash(name: &str) -> String {
    name.trim_start_matches('/').to_string()
}

fn sorted(labels: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    labels
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    const DOCKER_LIST_RUNNING: &str = include_str!("fixtures/docker-list-running.json");
    const DOCKER_LIST_EXITED: &str = include_str!("fixtures/docker-list-exited.json");
    const PODMAN_LIST_RUNNING: &str = include_str!("fixtures/podman-list-running.json");
    const PODMAN_LIST_EXITED: &str = include_str!("fixtures/podman-list-exited.json");
    const DOCKER_INSPECT_RUNNING: &str = include_str!("fixtures/docker-inspect-running.json");
    const DOCKER_INSPECT_EXITED: &str = include_str!("fixtures/docker-inspect-exited.json");
    const PODMAN_INSPECT_RUNNING: &str = include_str!("fixtures/podman-inspect-running.json");
    const PODMAN_INSPECT_EXITED: &str = include_str!("fixtures/podman-inspect-exited.json");
    const DOCKER_EVENTS: &str = include_str!("fixtures/docker-events.jsonl");
    const PODMAN_EVENTS: &str = include_str!("fixtures/podman-events.jsonl");

    fn listed(text: &str) -> ContainerInfo {
        let list: Vec<ContainerSummary> = serde_json::from_str(text).expect("bollard reads the list");
        assert_eq!(list.len(), 1);
        from_summary(&list[0]).unwrap()
    }

    fn inspected(text: &str) -> ContainerInfo {
        let i: ContainerInspectResponse = serde_json::from_str(text).expect("bollard reads the inspection");
        from_inspect(&i).unwrap()
    }

    fn events(text: &str) -> Vec<RuntimeEvent> {
        text.lines()
            .map(|l| serde_json::from_str::<EventMessage>(l).expect("bollard reads the event"))
            .filter_map(|m| event(&m))
            .collect()
    }

    #[test]
    fn a_running_docker_container_lists_with_its_name_labels_and_loopback_port() {
        let c = listed(DOCKER_LIST_RUNNING);
        assert_eq!(c.name, "llorch-fixture-docker");
        assert_eq!(c.state, ContainerState::Running);
        assert_eq!(c.host_port, Some(32771));
        assert_eq!(c.labels.get("llama-orch.dev/test").map(String::as_str), Some("fixture"));
    }

    #[test]
    fn a_running_podman_container_lists_the_same_way() {
        let c = listed(PODMAN_LIST_RUNNING);
        assert_eq!(c.name, "llorch-fixture-podman");
        assert_eq!(c.state, ContainerState::Running);
        assert_eq!(c.host_port, Some(37049));
        assert_eq!(c.labels.get("llama-orch.dev/test").map(String::as_str), Some("fixture"));
    }

    #[test]
    fn list_and_inspect_agree_on_both_runtimes() {
        for (list, inspect) in [
            (DOCKER_LIST_RUNNING, DOCKER_INSPECT_RUNNING),
            (PODMAN_LIST_RUNNING, PODMAN_INSPECT_RUNNING),
        ] {
            assert_eq!(listed(list), inspected(inspect));
        }
        for (list, inspect) in [
            (DOCKER_LIST_EXITED, DOCKER_INSPECT_EXITED),
            (PODMAN_LIST_EXITED, PODMAN_INSPECT_EXITED),
        ] {
            assert_eq!(listed(list), inspected(inspect));
        }
    }

    #[test]
    fn a_killed_container_is_exited_with_137_and_has_no_host_port_even_where_podman_still_lists_one() {
        let podman_raw: Vec<ContainerSummary> = serde_json::from_str(PODMAN_LIST_EXITED).unwrap();
        assert!(
            podman_raw[0].ports.iter().flatten().any(|p| p.public_port.is_some()),
            "Podman keeps the port"
        );
        for text in [DOCKER_LIST_EXITED, PODMAN_LIST_EXITED] {
            let c = listed(text);
            assert_eq!(c.state, ContainerState::Exited(137));
            assert_eq!(c.host_port, None);
        }
        for text in [DOCKER_INSPECT_EXITED, PODMAN_INSPECT_EXITED] {
            let c = inspected(text);
            assert_eq!(c.state, ContainerState::Exited(137));
            assert_eq!(c.host_port, None);
        }
    }

    #[test]
    fn docker_inspect_reads_the_allocated_port_not_the_requested_empty_one() {
        let i: ContainerInspectResponse = serde_json::from_str(DOCKER_INSPECT_RUNNING).unwrap();
        let requested = i.host_config.as_ref().and_then(|h| h.port_bindings.as_ref()).unwrap();
        assert_eq!(
            requested["8080/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("")
        );
        assert_eq!(from_inspect(&i).unwrap().host_port, Some(32771));
    }

    #[test]
    fn die_and_destroy_are_seen_on_docker_with_labels_only() {
        let evs = events(DOCKER_EVENTS);
        let actions: Vec<&str> = evs.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["create", "start", "kill", "die", "destroy"]);
        let die = &evs[3];
        assert_eq!(
            die.labels,
            BTreeMap::from([("llama-orch.dev/test".to_string(), "fixture".to_string())])
        );
        assert_eq!(die.container_id.len(), 64);
    }

    #[test]
    fn podmans_remove_becomes_destroy_and_its_extra_steps_pass_through() {
        let evs = events(PODMAN_EVENTS);
        let actions: Vec<&str> = evs.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            ["create", "init", "start", "kill", "die", "cleanup", "destroy"]
        );
        let die = &evs[4];
        assert_eq!(
            die.labels.get("llama-orch.dev/test").map(String::as_str),
            Some("fixture")
        );
        assert!(!die.labels.contains_key("exitCode") && !die.labels.contains_key("name"));
        // Podman also reports the image's own labels, as it does on the container.
        assert!(die.labels.contains_key("io.buildah.version"));
    }

    #[test]
    fn events_of_other_types_are_ignored() {
        let m: EventMessage =
            serde_json::from_str(r#"{"Type":"image","Action":"pull","Actor":{"ID":"sha256:1"}}"#).unwrap();
        assert_eq!(event(&m), None);
    }

    #[test]
    fn exit_codes_are_read_from_status_text() {
        assert_eq!(exit_code_from_status("Exited (137) 1 second ago"), Some(137));
        assert_eq!(exit_code_from_status("Exited (0) About a minute ago"), Some(0));
        assert_eq!(exit_code_from_status("Up 3 seconds"), None);
    }

    #[test]
    fn an_exited_summary_without_a_readable_code_is_other() {
        let s: ContainerSummary = serde_json::from_str(r#"{"Id":"x","State":"exited","Status":"weird"}"#).unwrap();
        assert_eq!(
            from_summary(&s).unwrap().state,
            ContainerState::Other("exited (weird)".into())
        );
    }

    /// What Podman 4.3 answered in the e2e run right after a `die`: `stopped`, not `exited`.
    fn podman_list_stopped() -> String {
        PODMAN_LIST_EXITED.replace(r#""State": "exited""#, r#""State": "stopped""#)
    }

    #[test]
    fn bollard_alone_rejects_podmans_stopped_state() {
        let raw = podman_list_stopped();
        assert!(raw.contains(r#""State": "stopped""#));
        assert!(serde_json::from_str::<Vec<ContainerSummary>>(&raw).is_err());
    }

    #[test]
    fn a_stopped_podman_container_reads_leniently_as_exited_with_its_code() {
        let infos = summaries_leniently(&podman_list_stopped()).unwrap();
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].state, ContainerState::Exited(137));
        assert_eq!(infos[0].host_port, None);
        assert_eq!(infos[0].name, "llorch-fixture-podman");
    }

    #[test]
    fn a_state_nobody_defines_is_kept_by_name_as_other() {
        let raw = PODMAN_LIST_RUNNING.replace(r#""State": "running""#, r#""State": "hibernating""#);
        let infos = summaries_leniently(&raw).unwrap();
        assert_eq!(infos[0].state, ContainerState::Other("hibernating".into()));
        assert_eq!(infos[0].host_port, None);
    }

    #[test]
    fn a_stopped_inspection_reads_leniently_too() {
        let raw = PODMAN_INSPECT_EXITED.replacen(r#""Status": "exited""#, r#""Status": "stopped""#, 1);
        assert!(serde_json::from_str::<ContainerInspectResponse>(&raw).is_err());
        let info = inspect_leniently(&raw).unwrap().unwrap();
        assert_eq!(info.state, ContainerState::Exited(137));
        assert_eq!(info, inspected(PODMAN_INSPECT_EXITED));
    }

    #[test]
    fn configured_reads_as_created() {
        let raw = PODMAN_LIST_RUNNING.replace(r#""State": "running""#, r#""State": "configured""#);
        assert_eq!(summaries_leniently(&raw).unwrap()[0].state, ContainerState::Created);
    }

    fn out(s: &str) -> LogOutput {
        LogOutput::StdOut {
            message: Bytes::from(s.to_string()),
        }
    }

    fn err(s: &str) -> LogOutput {
        LogOutput::StdErr {
            message: Bytes::from(s.to_string()),
        }
    }

    #[test]
    fn log_frames_become_lines_without_mixing_partial_stdout_and_stderr() {
        let mut lines = LogLines::default();
        for f in [out("one\ntw"), err("warn"), out("o\n"), err("ing\r\n"), out("three")] {
            lines.push(&f);
        }
        assert_eq!(lines.finish(10), ["one", "two", "warning", "three"]);
    }

    #[test]
    fn a_followed_log_yields_complete_lines_as_they_arrive_and_splits_endless_ones() {
        let mut lines = LogLines::default();
        lines.push(&out("one\ntw"));
        assert_eq!(lines.take(), ["one"]);
        lines.push(&out("o\n"));
        assert_eq!(lines.take(), ["two"]);
        lines.push(&out(&"x".repeat(MAX_LINE_BYTES + 1)));
        assert_eq!(lines.take().len(), 1);
        assert!(lines.take().is_empty());
    }

    #[test]
    fn only_the_last_lines_are_kept() {
        let mut lines = LogLines::default();
        lines.push(&out("a\nb\nc\n"));
        assert_eq!(lines.finish(2), ["b", "c"]);
    }
}
