//! Turns a [`ContainerSpec`] into the body of `POST /containers/create` for the server at hand.
//! Pure, so everything the runtime is asked to do — labels, the loopback port, read-only model
//! mounts, and above all how GPUs are attached — is tested without a daemon or a GPU.
//!
//! GPUs, per server (checked against Docker 20.10 and Podman 4.3's Docker-compatible API):
//! - Docker: `HostConfig.DeviceRequests = [{Driver: "nvidia", DeviceIDs, Capabilities: [["gpu"]]}]`
//!   (the NVIDIA container toolkit serves it; without it, start fails loudly with
//!   `could not select device driver "nvidia"`).
//! - Podman: `DeviceRequests = [{Driver: "cdi", DeviceIDs: ["nvidia.com/gpu=<id>"]}]`, honoured
//!   from Podman 5.4 on (containers/podman#25171). Podman 4.x accepts any device request and
//!   silently drops it, and its compat API turns `HostConfig.Devices` CDI names into host paths
//!   (`stat nvidia.com/gpu=0: no such file or directory`), so older Podman is refused here: a
//!   container that silently runs without its GPU would be a CPU fallback.
//! - `Simulated` and `None`: no device request at all; simulated GPUs only reach the engine
//!   through the environment the caller sets.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceRequest, HostConfig, Mount as ApiMount, MountType, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};

use super::server::{PODMAN_CDI_MIN, ServerInfo, ServerKind};
use crate::runtime::{ContainerSpec, GpuAttachment, Mount, Result, RuntimeError};

/// Published container ports are bound here only: engines are never reachable from the network.
pub const HOST_IP: &str = llorch_manifests::Endpoint::LOOPBACK;

/// The create body for `spec` on `server`. Fails when the spec cannot be honoured as written
/// (an invalid port or mount, or GPUs this server would silently drop).
pub fn create_body(spec: &ContainerSpec, server: &ServerInfo) -> Result<ContainerCreateBody> {
    if spec.container_port == 0 {
        return Err(invalid(
            "container_port is 0; engines must listen on a fixed port inside the container",
        ));
    }
    let port_key = format!("{}/tcp", spec.container_port);
    // An empty HostPort asks for an ephemeral port, on both Docker and Podman.
    let binding = PortBinding {
        host_ip: Some(HOST_IP.to_string()),
        host_port: Some(String::new()),
    };

    let host_config = HostConfig {
        port_bindings: Some(HashMap::from([(port_key.clone(), Some(vec![binding]))])),
        mounts: Some(spec.mounts.iter().map(bind_mount).collect::<Result<_>>()?),
        device_requests: device_requests(&spec.gpus, server)?,
        // The reconciler restarts crashed replicas itself, with backoff and a circuit breaker.
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        ..Default::default()
    };

    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        // Cmd only: the image's entrypoint (the engine binary) is kept.
        cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        exposed_ports: Some(vec![port_key]),
        host_config: Some(host_config),
        ..Default::default()
    })
}

/// A bind mount through `HostConfig.Mounts` rather than `Binds`: Docker then refuses a missing
/// source instead of creating an empty root-owned directory in its place, and paths may
/// contain `:`.
fn bind_mount(m: &Mount) -> Result<ApiMount> {
    if !m.host_path.starts_with('/') || !m.container_path.starts_with('/') {
        return Err(invalid(&format!(
            "mount `{}` -> `{}`: both paths must be absolute",
            m.host_path, m.container_path
        )));
    }
    Ok(ApiMount {
        typ: Some(MountType::BIND),
        source: Some(m.host_path.clone()),
        target: Some(m.container_path.clone()),
        read_only: Some(m.read_only),
        ..Default::default()
    })
}

fn device_requests(gpus: &GpuAttachment, server: &ServerInfo) -> Result<Option<Vec<DeviceRequest>>> {
    let ids = match gpus {
        GpuAttachment::None | GpuAttachment::Simulated(_) => return Ok(None),
        GpuAttachment::Nvidia(ids) if ids.is_empty() => {
            return Err(gpu_error(
                "GpuAttachment::Nvidia lists no GPU; pass the indices to attach",
            ));
        }
        GpuAttachment::Nvidia(ids) => ids,
    };
    let request = match server.kind {
        ServerKind::Docker => DeviceRequest {
            driver: Some("nvidia".to_string()),
            device_ids: Some(ids.iter().map(u32::to_string).collect()),
            capabilities: Some(vec![vec!["gpu".to_string()]]),
            ..Default::default()
        },
        ServerKind::Podman if !server.attaches_gpus() => {
            let (major, minor, _) = PODMAN_CDI_MIN;
            return Err(gpu_error(&format!(
                "Podman {} drops GPU requests made through its Docker-compatible API, so the engine \
                 would run without its GPU; upgrade to Podman {major}.{minor} or newer (and generate the \
                 CDI spec with `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`), or use Docker \
                 with the NVIDIA container toolkit",
                server.version
            )));
        }
        ServerKind::Podman => DeviceRequest {
            driver: Some("cdi".to_string()),
            device_ids: Some(ids.iter().map(|id| format!("nvidia.com/gpu={id}")).collect()),
            ..Default::default()
        },
    };
    Ok(Some(vec![request]))
}

fn invalid(message: &str) -> RuntimeError {
    RuntimeError::Api {
        step: "build container spec",
        message: message.to_string(),
    }
}

fn gpu_error(message: &str) -> RuntimeError {
    RuntimeError::Api {
        step: "attach GPUs",
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn spec(gpus: GpuAttachment) -> ContainerSpec {
        ContainerSpec {
            name: "llorch-default-chat-0".into(),
            image: "llama-orch/mock-engine:dev".into(),
            launch: crate::runtime::Launch::Image,
            args: vec![
                "--model".into(),
                "/models/m.gguf".into(),
                "--port".into(),
                "8080".into(),
            ],
            env: vec![
                ("CUDA_VISIBLE_DEVICES".into(), "0,1".into()),
                ("A".into(), "b=c".into()),
            ],
            labels: BTreeMap::from([
                ("llama-orch.dev/owner".to_string(), "llama-orch".to_string()),
                ("llama-orch.dev/pool".to_string(), "chat".to_string()),
            ]),
            container_port: 8080,
            mounts: vec![Mount {
                host_path: "/home/u/.cache/llama-orch/models/m.gguf".into(),
                container_path: "/models/m.gguf".into(),
                read_only: true,
            }],
            gpus,
        }
    }

    fn docker() -> ServerInfo {
        ServerInfo {
            kind: ServerKind::Docker,
            version: "20.10.24+dfsg1".into(),
        }
    }

    fn podman(version: &str) -> ServerInfo {
        ServerInfo {
            kind: ServerKind::Podman,
            version: version.into(),
        }
    }

    fn host_config(body: &ContainerCreateBody) -> &HostConfig {
        body.host_config.as_ref().unwrap()
    }

    #[test]
    fn labels_env_image_and_args_are_passed_through_and_the_entrypoint_is_kept() {
        let body = create_body(&spec(GpuAttachment::None), &docker()).unwrap();
        assert_eq!(body.image.as_deref(), Some("llama-orch/mock-engine:dev"));
        assert_eq!(
            body.cmd.as_deref(),
            Some(&["--model", "/models/m.gguf", "--port", "8080"].map(String::from)[..])
        );
        assert_eq!(body.entrypoint, None);
        assert_eq!(
            body.env.as_deref(),
            Some(&["CUDA_VISIBLE_DEVICES=0,1".to_string(), "A=b=c".to_string()][..])
        );
        let labels = body.labels.unwrap();
        assert_eq!(labels.get("llama-orch.dev/pool").map(String::as_str), Some("chat"));
        assert_eq!(labels.len(), 2);
    }

    #[test]
    fn no_args_leave_the_images_own_cmd() {
        let mut s = spec(GpuAttachment::None);
        s.args.clear();
        assert_eq!(create_body(&s, &docker()).unwrap().cmd, None);
    }

    #[test]
    fn the_port_is_published_on_loopback_at_an_ephemeral_host_port() {
        let body = create_body(&spec(GpuAttachment::None), &podman("4.3.1")).unwrap();
        assert_eq!(body.exposed_ports, Some(vec!["8080/tcp".to_string()]));
        let bindings = host_config(&body).port_bindings.as_ref().unwrap();
        assert_eq!(bindings.len(), 1);
        let binding = &bindings["8080/tcp"].as_ref().unwrap()[..];
        assert_eq!(
            binding,
            [PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(String::new())
            }]
        );
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostIp"], "127.0.0.1");
        assert_eq!(json["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
    }

    #[test]
    fn the_model_is_bind_mounted_read_only() {
        let body = create_body(&spec(GpuAttachment::None), &docker()).unwrap();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json["HostConfig"]["Mounts"],
            serde_json::json!([{
                "Type": "bind",
                "Source": "/home/u/.cache/llama-orch/models/m.gguf",
                "Target": "/models/m.gguf",
                "ReadOnly": true
            }])
        );
        assert_eq!(json["HostConfig"].get("Binds"), None);
    }

    #[test]
    fn a_writable_mount_stays_writable() {
        let mut s = spec(GpuAttachment::None);
        s.mounts[0].read_only = false;
        let body = create_body(&s, &docker()).unwrap();
        assert_eq!(host_config(&body).mounts.as_ref().unwrap()[0].read_only, Some(false));
    }

    #[test]
    fn relative_mount_paths_are_refused() {
        let mut s = spec(GpuAttachment::None);
        s.mounts[0].host_path = "models/m.gguf".into();
        let err = create_body(&s, &docker()).unwrap_err().to_string();
        assert!(err.contains("models/m.gguf") && err.contains("absolute"), "{err}");
    }

    #[test]
    fn no_restart_policy_is_asked_for() {
        let body = create_body(&spec(GpuAttachment::None), &docker()).unwrap();
        let policy = host_config(&body).restart_policy.as_ref().unwrap();
        assert_eq!(policy.name, Some(RestartPolicyNameEnum::NO));
    }

    #[test]
    fn nvidia_gpus_on_docker_become_an_nvidia_device_request_with_the_gpu_capability() {
        let body = create_body(&spec(GpuAttachment::Nvidia(vec![0, 1])), &docker()).unwrap();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json["HostConfig"]["DeviceRequests"],
            serde_json::json!([{"Driver": "nvidia", "DeviceIDs": ["0", "1"], "Capabilities": [["gpu"]]}])
        );
        assert_eq!(host_config(&body).devices, None);
    }

    #[test]
    fn nvidia_gpus_on_podman_5_4_become_cdi_device_names() {
        let body = create_body(&spec(GpuAttachment::Nvidia(vec![1])), &podman("5.4.0")).unwrap();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json["HostConfig"]["DeviceRequests"],
            serde_json::json!([{"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=1"]}])
        );
    }

    #[test]
    fn nvidia_gpus_on_podman_4_are_refused_rather_than_silently_dropped() {
        let err = create_body(&spec(GpuAttachment::Nvidia(vec![0])), &podman("4.3.1"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("attach GPUs failed: Podman 4.3.1"), "{err}");
        assert!(err.contains("Podman 5.4 or newer"), "{err}");
    }

    #[test]
    fn simulated_gpus_get_no_device_request() {
        for server in [docker(), podman("4.3.1"), podman("5.4.0")] {
            let body = create_body(&spec(GpuAttachment::Simulated(vec![0, 1])), &server).unwrap();
            assert_eq!(host_config(&body).device_requests, None, "{server:?}");
            assert_eq!(host_config(&body).devices, None, "{server:?}");
            let env = body.env.unwrap();
            assert!(
                env.contains(&"CUDA_VISIBLE_DEVICES=0,1".to_string()),
                "the caller's env is kept"
            );
        }
    }

    #[test]
    fn an_empty_nvidia_list_is_refused() {
        let err = create_body(&spec(GpuAttachment::Nvidia(vec![])), &docker())
            .unwrap_err()
            .to_string();
        assert!(err.contains("lists no GPU"), "{err}");
    }

    #[test]
    fn port_zero_is_refused() {
        let mut s = spec(GpuAttachment::None);
        s.container_port = 0;
        assert!(
            create_body(&s, &docker())
                .unwrap_err()
                .to_string()
                .contains("container_port")
        );
    }
}
