//! The renderers over small manifest sets: what an external Engine, a hidden environment
//! value, a Pool sized by demand and a Recreate rollout become, and that the gateway's own
//! manifests are ones llama-orch accepts.

use std::collections::BTreeMap;

use llorch_manifests::parse::Located;
use llorch_manifests::{AnyObject, parse_file};

use super::gateway::{self, GatewayOptions};
use super::model_volume::DEFAULT_FETCH_IMAGE;
use super::{Options, Unexportable, kubernetes};

fn objects(yaml: &str) -> Vec<AnyObject> {
    parse_file("t.yaml", yaml.as_bytes())
        .unwrap()
        .into_iter()
        .map(|l| l.object)
        .collect()
}

fn options() -> Options {
    Options {
        namespace: Some("ai".into()),
        gpu_product: None,
        fetch_image: DEFAULT_FETCH_IMAGE.into(),
        simulated_gpus: false,
        model_sizes: BTreeMap::new(),
        gateway: None,
    }
}

const MODEL: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {name: m}\nspec: {ref: \"hf:org/repo/m.gguf\", ctxMax: 8192}\n---\n";

fn external(url: &str) -> String {
    format!(
        "{MODEL}apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: lab}}\nspec: {{provisioning: external, url: \"{url}\", version: x}}\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: p}}\nspec: {{engine: lab, model: m, replicas: 1}}\n"
    )
}

fn kinds(objects: &[serde_json::Value]) -> Vec<&str> {
    objects.iter().filter_map(|o| o["kind"].as_str()).collect()
}

#[test]
fn an_external_engine_at_an_address_is_a_service_with_an_endpoint_slice() {
    let out = kubernetes(&objects(&external("http://10.1.2.3:8081")), &[], &options());
    assert!(out.refusals.is_empty(), "{:?}", out.refusals);
    assert_eq!(kinds(&out.objects), ["Service", "EndpointSlice"]);
    assert!(out.objects[0]["spec"].get("selector").is_none());
    let slice = &out.objects[1];
    assert_eq!(slice["metadata"]["labels"]["kubernetes.io/service-name"], "llorch-p");
    assert_eq!(slice["endpoints"][0]["addresses"][0], "10.1.2.3");
    assert_eq!(slice["ports"][0]["port"], 8081);
}

#[test]
fn an_external_engine_by_name_is_an_external_name_service() {
    let out = kubernetes(&objects(&external("http://gpu-box.lan:8081")), &[], &options());
    assert_eq!(kinds(&out.objects), ["Service"]);
    assert_eq!(out.objects[0]["spec"]["type"], "ExternalName");
    assert_eq!(out.objects[0]["spec"]["externalName"], "gpu-box.lan");
}

#[test]
fn an_external_engine_on_loopback_is_refused() {
    for url in ["http://127.0.0.1:8081", "http://localhost:8081", "http://[::1]:8081"] {
        let out = kubernetes(&objects(&external(url)), &[], &options());
        assert!(out.objects.is_empty(), "{url}");
        assert!(
            matches!(out.refusals[0].why, Unexportable::LoopbackEngine { .. }),
            "{url}: {:?}",
            out.refusals
        );
        assert!(
            out.refusals[0]
                .to_string()
                .starts_with("pool/p: Engine `lab` is `external`")
        );
    }
}

const CONTAINER: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: vllm}\nspec:\n  image: vllm/vllm-openai:v0.10.2\n  version: v0.10.2\n  api: openai\n  port: 8000\n  args: [\"--model\", \"{model_path}\", \"--max-model-len\", \"{ctx_size}\", \"--max-num-seqs\", \"{slots}\"]\n  env:\n    HF_TOKEN: hunter2-literal\n    VLLM_API_KEY: {valueFrom: {env: KEY}}\n    VLLM_LOGGING_LEVEL: INFO\n---\n";

#[test]
fn hidden_values_come_from_a_secret_and_never_appear_in_the_output() {
    let yaml = format!(
        "{MODEL}{CONTAINER}apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: p}}\nspec: {{engine: vllm, model: m, replicas: 2, slotsPerReplica: 8, ctxSize: 4096}}\n"
    );
    let out = kubernetes(&objects(&yaml), &[], &options());
    assert!(out.refusals.is_empty(), "{:?}", out.refusals);
    let text = serde_json::to_string(&out.objects).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    let deployment = out.objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let engine = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        engine["args"],
        serde_json::json!([
            "--model",
            "/models/m.gguf",
            "--max-model-len",
            "4096",
            "--max-num-seqs",
            "8"
        ])
    );
    let env = engine["env"].as_array().unwrap();
    let by_name = |n: &str| env.iter().find(|e| e["name"] == n).unwrap().clone();
    assert_eq!(by_name("VLLM_LOGGING_LEVEL")["value"], "INFO");
    for hidden in ["HF_TOKEN", "VLLM_API_KEY"] {
        assert_eq!(by_name(hidden)["valueFrom"]["secretKeyRef"]["name"], "llorch-vllm-env");
        assert_eq!(by_name(hidden)["valueFrom"]["secretKeyRef"]["key"], hidden);
        assert!(
            out.notes
                .iter()
                .any(|n| n.text.contains(&format!("--from-literal={hidden}="))),
            "{:?}",
            out.notes
        );
    }
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(engine["resources"]["limits"]["nvidia.com/gpu"], "1");
    // A hub download: the init container, an emptyDir, and no claim.
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["initContainers"][0]["name"], "fetch-model");
    assert!(pod["volumes"][0]["emptyDir"].is_object());
    assert!(!kinds(&out.objects).contains(&"PersistentVolumeClaim"));
}

#[test]
fn a_pool_sized_by_demand_runs_its_minimum_or_one_and_says_so() {
    let yaml = format!(
        "{MODEL}{CONTAINER}apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: p}}\nspec:\n  engine: vllm\n  model: m\n  scaling: {{minReplicas: 0, maxReplicas: 3, idleTimeout: 10m}}\n  rollout: {{strategy: Recreate}}\n"
    );
    let out = kubernetes(&objects(&yaml), &[], &options());
    let deployment = out.objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert!(
        out.notes
            .iter()
            .any(|n| n.text.contains("sized by demand (`scaling`, 0–3 replicas)"))
    );
}

#[test]
fn the_gateways_manifests_are_a_set_llama_orch_accepts() {
    let yaml = format!(
        "{MODEL}{CONTAINER}apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: p, labels: {{team: ai}}}}\nspec: {{engine: vllm, model: m, replicas: 3, slotsPerReplica: 8, ctxSize: 4096, priority: 5}}\n"
    );
    let mut opts = options();
    opts.gateway = Some(GatewayOptions { image: "img".into() });
    let out = kubernetes(&objects(&yaml), &[], &opts);
    assert!(out.refusals.is_empty(), "{:?}", out.refusals);
    let config_map = out.objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    let data = config_map["data"].as_object().unwrap();
    let config = llorch_manifests::config::Config::from_yaml(data["config.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(config.bind, format!("0.0.0.0:{}", gateway::PORT));
    assert!(config.allowed_hosts.contains(&"llorch-gateway.ai.svc".to_string()));
    let mut located: Vec<Located> = Vec::new();
    for (file, text) in data.iter().filter(|(k, _)| *k != "config.yaml") {
        located.extend(parse_file(file, text.as_str().unwrap().as_bytes()).unwrap());
    }
    assert!(llorch_manifests::validate::check_set(&located).is_empty());
    let find = |kind: &str| {
        located
            .iter()
            .find(|l| l.object.kind().to_string() == kind)
            .unwrap()
            .object
            .clone()
    };
    let AnyObject::Engine(engine) = find("Engine") else {
        panic!()
    };
    assert_eq!(engine.spec.url.as_deref(), Some("http://llorch-p:8000"));
    assert_eq!(engine.spec.version, "v0.10.2");
    let AnyObject::Pool(pool) = find("Pool") else { panic!() };
    assert_eq!(pool.spec.replicas, Some(1));
    assert_eq!(pool.spec.slots_per_replica, 24);
    assert_eq!(pool.spec.ctx_size, Some(4096));
    assert_eq!(pool.spec.priority, 5);
    assert_eq!(pool.metadata.labels["team"], "ai");
    // The gateway's Deployment mounts the ConfigMap: config.yaml and every manifest.
    let deployment = out
        .objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "llorch-gateway")
        .unwrap();
    let items = deployment["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"]
        .as_array()
        .unwrap();
    assert_eq!(items.len(), data.len());
}
