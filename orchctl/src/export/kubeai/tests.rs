//! The KubeAI renderer against the shipped examples: what renders, and each refusal.

#![allow(clippy::unwrap_used)]

use llorch_manifests::secrets::{EnvValue, FromSource, ValueFrom};
use llorch_manifests::{AnyObject, Engine, Model, Pool, Provisioning, Workload, parse_file};
use serde_json::{Value, json};

use super::*;

/// The objects of `examples/<file>`.
fn example(file: &str) -> Vec<AnyObject> {
    let path = format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap();
    parse_file(&path, &bytes)
        .unwrap()
        .into_iter()
        .map(|l| l.object)
        .collect()
}

fn render(objects: &[AnyObject], options: &KubeAiOptions) -> Result<Value, Unexportable> {
    let pool = objects
        .iter()
        .find_map(|o| match o {
            AnyObject::Pool(p) => Some(p),
            _ => None,
        })
        .unwrap();
    model(&PoolParts::find(objects, pool).unwrap(), options)
}

fn gap(objects: &[AnyObject]) -> KubeAiGap {
    match render(objects, &KubeAiOptions::default()).unwrap_err() {
        Unexportable::KubeAi(gap) => gap,
        other => panic!("not a KubeAI gap: {other}"),
    }
}

fn engine(objects: &mut [AnyObject]) -> &mut Engine {
    objects
        .iter_mut()
        .find_map(|o| match o {
            AnyObject::Engine(e) => Some(e),
            _ => None,
        })
        .unwrap()
}

fn model_of(objects: &mut [AnyObject]) -> &mut Model {
    objects
        .iter_mut()
        .find_map(|o| match o {
            AnyObject::Model(m) => Some(m),
            _ => None,
        })
        .unwrap()
}

fn pool(objects: &mut [AnyObject]) -> &mut Pool {
    objects
        .iter_mut()
        .find_map(|o| match o {
            AnyObject::Pool(p) => Some(p),
            _ => None,
        })
        .unwrap()
}

/// `examples/engines/vllm.yaml` with vLLM loading the base repository from the Hub instead of
/// the GGUF file, and the Model tracking that repository's config.json (as the TGI example
/// does): the form KubeAI can serve.
fn vllm_repository() -> Vec<AnyObject> {
    let mut objects = example("engines/vllm.yaml");
    let args = &mut engine(&mut objects).spec.args;
    let at = args.iter().position(|a| a == "{model_path}").unwrap();
    args[at] = "Qwen/Qwen2.5-7B-Instruct".into();
    model_of(&mut objects).spec.reference = "hf:Qwen/Qwen2.5-7B-Instruct/config.json".into();
    objects
}

#[test]
fn the_vllm_example_serving_its_repository_renders_a_complete_model() {
    let rendered = render(&vllm_repository(), &KubeAiOptions::default()).unwrap();
    assert_eq!(
        rendered,
        json!({
            "apiVersion": "kubeai.org/v1",
            "kind": "Model",
            "metadata": {
                "name": "chat-vllm",
                "labels": {
                    "app.kubernetes.io/part-of": "llama-orch",
                    "app.kubernetes.io/managed-by": "orchctl",
                    "dev.llama-orch.pool": "chat-vllm",
                },
            },
            "spec": {
                "url": "hf://Qwen/Qwen2.5-7B-Instruct",
                "engine": "VLLM",
                "image": "vllm/vllm-openai:v0.10.2",
                "features": ["TextGeneration"],
                "resourceProfile": "nvidia-gpu-l4:1",
                "args": [
                    "--tokenizer", "Qwen/Qwen2.5-7B-Instruct",
                    "--max-model-len", "8192",
                    "--max-num-seqs", "16",
                    "--gpu-memory-utilization", "0.80",
                ],
                "autoscalingDisabled": true,
                "replicas": 1,
                "minReplicas": 1,
                "maxReplicas": 1,
                "scaleDownDelaySeconds": 30,
                "targetRequests": 16,
            },
        })
    );
}

#[test]
fn the_vllm_example_as_shipped_is_refused_for_its_single_gguf_file() {
    let gap = gap(&example("engines/vllm.yaml"));
    assert_eq!(
        gap,
        KubeAiGap::ModelRef {
            model: "qwen-7b-gguf-vllm".into(),
            reference: "hf:bartowski/Qwen2.5-7B-Instruct-GGUF/Qwen2.5-7B-Instruct-Q4_K_M.gguf".into(),
            kind: RefGap::HubFile,
        }
    );
    let message = gap.to_string();
    assert!(message.contains("without `--format kubeai`"), "{message}");
    assert!(
        message.contains("set the Engine's `--model` to `org/repo`"),
        "{message}"
    );
}

#[test]
fn namespace_pool_labels_profile_and_context_come_from_the_pool_and_options() {
    let mut objects = vllm_repository();
    let p = pool(&mut objects);
    p.metadata.labels.insert("team".into(), "demo".into());
    // A Pool label cannot take over the labels export owns.
    p.metadata
        .labels
        .insert("app.kubernetes.io/managed-by".into(), "me".into());
    p.spec.gpus_per_replica = 2;
    p.spec.ctx_size = None;
    p.spec.slots_per_replica = 4;
    let options = KubeAiOptions {
        namespace: Some("llm".into()),
        resource_profile: "nvidia-gpu-h100".into(),
    };
    let rendered = render(&objects, &options).unwrap();
    assert_eq!(rendered["metadata"]["namespace"], "llm");
    assert_eq!(
        rendered["metadata"]["labels"],
        json!({
            "team": "demo",
            "app.kubernetes.io/part-of": "llama-orch",
            "app.kubernetes.io/managed-by": "orchctl",
            "dev.llama-orch.pool": "chat-vllm",
        })
    );
    assert_eq!(rendered["spec"]["resourceProfile"], "nvidia-gpu-h100:2");
    // No ctxSize: the Model's ctxMax.
    let args = rendered["spec"]["args"].as_array().unwrap();
    assert!(
        args.windows(2).any(|w| w == [json!("--max-model-len"), json!("32768")]),
        "{args:?}"
    );
    assert!(
        args.windows(2).any(|w| w == [json!("--max-num-seqs"), json!("4")]),
        "{args:?}"
    );
    assert_eq!(rendered["spec"]["targetRequests"], 4);
}

#[test]
fn scaling_maps_onto_kubeais_autoscaler_and_a_fixed_count_disables_it() {
    let mut objects = vllm_repository();
    let p = pool(&mut objects);
    p.spec.replicas = None;
    p.spec.scaling = serde_json::from_value(json!({"minReplicas": 0, "maxReplicas": 3, "idleTimeout": "10m"})).unwrap();
    let spec = render(&objects, &KubeAiOptions::default()).unwrap()["spec"].clone();
    assert_eq!(spec["minReplicas"], 0);
    assert_eq!(spec["maxReplicas"], 3);
    assert_eq!(spec["scaleDownDelaySeconds"], 600);
    assert_eq!(spec["targetRequests"], 16);
    for managed_by_kubeai in ["replicas", "autoscalingDisabled"] {
        assert!(spec.get(managed_by_kubeai).is_none(), "{managed_by_kubeai}: {spec}");
    }

    let p = pool(&mut objects);
    p.spec.scaling = None;
    p.spec.replicas = Some(0);
    let spec = render(&objects, &KubeAiOptions::default()).unwrap()["spec"].clone();
    assert_eq!(spec["autoscalingDisabled"], true);
    assert_eq!(spec["replicas"], 0);
    assert_eq!(spec["minReplicas"], 0);
    assert!(
        spec.get("maxReplicas").is_none(),
        "KubeAI's maxReplicas is at least 1: {spec}"
    );
}

#[test]
fn an_embeddings_pool_is_a_text_embedding_model() {
    let mut objects = vllm_repository();
    pool(&mut objects).spec.workload = Workload::Embeddings;
    let rendered = render(&objects, &KubeAiOptions::default()).unwrap();
    assert_eq!(rendered["spec"]["features"], json!(["TextEmbedding"]));
}

#[test]
fn llama_cpp_tgi_and_sglang_have_no_kubeai_engine() {
    assert_eq!(
        gap(&example("engines/llamacpp.yaml")),
        KubeAiGap::NoKubeAiEngine {
            engine: "llamacpp".into(),
            server: ForeignServer::LlamaCpp,
        }
    );
    assert_eq!(
        gap(&example("engines/tgi.yaml")),
        KubeAiGap::NoKubeAiEngine {
            engine: "tgi".into(),
            server: ForeignServer::Tgi,
        }
    );
    let sglang = gap(&example("engines/sglang.yaml"));
    assert_eq!(
        sglang,
        KubeAiGap::NotVllm {
            engine: "sglang".into(),
            image: "lmsysorg/sglang:latest".into(),
        }
    );
    for message in [gap(&example("engines/llamacpp.yaml")).to_string(), sglang.to_string()] {
        assert!(message.contains("export it without `--format kubeai`"), "{message}");
    }
}

#[test]
fn vllm_is_known_by_its_repository_name_not_its_tag_or_registry_port() {
    for image in [
        "vllm/vllm-openai:v0.10.2",
        "rocm/vllm:rocm7.0.0_vllm_0.11.1",
        "registry.local:5000/mirror/vllm-openai@sha256:abc",
        "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.11.2",
    ] {
        assert!(is_vllm_image(image), "{image}");
    }
    for image in [
        "lmsysorg/sglang:latest",
        "vllm.local:5000/sglang:v1",
        "org/server:vllm-0.10",
        "",
    ] {
        assert!(!is_vllm_image(image), "{image}");
    }
}

#[test]
fn model_files_and_downloads_are_refused_with_what_to_do() {
    for (reference, kind) in [
        ("file:/models/qwen.gguf", RefGap::LocalFile),
        ("https://example.com/qwen.gguf", RefGap::Url),
        ("hf:bartowski/Qwen2.5-7B-Instruct-GGUF", RefGap::HubFile),
    ] {
        let mut objects = example("engines/vllm.yaml");
        model_of(&mut objects).spec.reference = reference.into();
        let gap = gap(&objects);
        assert_eq!(
            gap,
            KubeAiGap::ModelRef {
                model: "qwen-7b-gguf-vllm".into(),
                reference: reference.into(),
                kind,
            }
        );
        assert!(gap.to_string().contains("export it without `--format kubeai`"), "{gap}");
    }
    // vLLM told to load something that is neither the Model nor a Hub repository.
    for value in ["/models/qwen", "org/repo/file.gguf", "org/repo:Q4_K_M", "../x/y"] {
        let mut objects = vllm_repository();
        let args = &mut engine(&mut objects).spec.args;
        args[1] = value.into();
        assert_eq!(
            gap(&objects),
            KubeAiGap::ModelArg {
                engine: "vllm".into(),
                value: value.into(),
            },
            "{value}"
        );
    }
}

#[test]
fn external_and_process_engines_are_refused() {
    let mut objects = vllm_repository();
    let e = engine(&mut objects);
    e.spec.provisioning = Provisioning::External;
    e.spec.image = None;
    e.spec.url = Some("http://10.0.0.5:8000".into());
    assert_eq!(gap(&objects), KubeAiGap::External { engine: "vllm".into() });

    let e = engine(&mut objects);
    e.spec.provisioning = Provisioning::Binary;
    e.spec.url = None;
    e.spec.executable = Some("/usr/local/bin/vllm".into());
    assert_eq!(
        render(&objects, &KubeAiOptions::default()).unwrap_err(),
        Unexportable::ProcessEngine {
            engine: "vllm".into(),
            mode: Provisioning::Binary,
        }
    );
}

#[test]
fn secrets_go_to_an_engine_secret_by_reference_and_hf_token_to_kubeai() {
    let mut objects = vllm_repository();
    let env = &mut engine(&mut objects).spec.env;
    env.insert("VLLM_LOGGING_LEVEL".into(), EnvValue::Literal("DEBUG".into()));
    env.insert("VLLM_API_KEY".into(), EnvValue::Literal("sk-literal-secret".into()));
    env.insert("HF_TOKEN".into(), EnvValue::Literal("hf_literal_secret".into()));
    env.insert(
        "EXTRA_CONFIG".into(),
        EnvValue::From(FromSource {
            value_from: ValueFrom::Env("LLORCH_KUBEAI_TEST_VAR".into()),
        }),
    );
    let rendered = render(&objects, &KubeAiOptions::default()).unwrap();
    assert_eq!(rendered["spec"]["env"], json!({"VLLM_LOGGING_LEVEL": "DEBUG"}));
    assert_eq!(
        rendered["spec"]["envFrom"],
        json!([{"secretRef": {"name": "llorch-vllm-env"}}])
    );
    let text = rendered.to_string();
    for hidden in ["sk-literal-secret", "hf_literal_secret", "LLORCH_KUBEAI_TEST_VAR"] {
        assert!(!text.contains(hidden), "{hidden} written: {text}");
    }
    assert_eq!(
        hidden_env(engine(&mut objects)),
        HiddenEnv {
            secret: Some(EnvSecret {
                name: "llorch-vllm-env".into(),
                keys: vec!["EXTRA_CONFIG".into(), "VLLM_API_KEY".into()],
            }),
            hub_token: true,
        }
    );

    // Only HF_TOKEN: no Secret, no envFrom.
    let env = &mut engine(&mut objects).spec.env;
    env.retain(|name, _| name == "HF_TOKEN");
    let rendered = render(&objects, &KubeAiOptions::default()).unwrap();
    assert!(rendered["spec"].get("envFrom").is_none(), "{rendered}");
    assert!(rendered["spec"].get("env").is_none(), "{rendered}");
    assert_eq!(hidden_env(engine(&mut objects)).secret, None);
}

/// Every field written is one the vendored CRD's v1 schema declares, with an allowed value
/// where it lists them, and the fields it requires are there. (The full JSON Schema check runs
/// in the export's schema test, in Python.)
#[test]
fn rendered_fields_are_those_of_the_vendored_crd() {
    let path = format!(
        "{}/../deploy/kubernetes/kubeai/kubeai.org_models.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(crd["spec"]["group"], "kubeai.org");
    let version = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1")
        .unwrap();
    let schema = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut objects = vllm_repository();
    engine(&mut objects)
        .spec
        .env
        .insert("A_TOKEN".into(), EnvValue::Literal("x".into()));
    engine(&mut objects)
        .spec
        .env
        .insert("LOG".into(), EnvValue::Literal("x".into()));
    let rendered = render(&objects, &KubeAiOptions::default()).unwrap();
    assert_eq!(
        format!("{}/{}", crd["spec"]["group"].as_str().unwrap(), "v1"),
        rendered["apiVersion"]
    );
    assert_eq!(crd["spec"]["names"]["kind"], rendered["kind"]);
    let spec = rendered["spec"].as_object().unwrap();
    for (field, value) in spec {
        let declared = &schema["properties"][field];
        assert!(declared.is_object(), "`{field}` is not in the CRD");
        if let Some(allowed) = declared["enum"].as_array() {
            assert!(allowed.contains(value), "{field}: {value}");
        }
        if let Some(allowed) = declared["items"]["enum"].as_array() {
            for item in value.as_array().unwrap() {
                assert!(allowed.contains(item), "{field}: {item}");
            }
        }
    }
    for required in schema["required"].as_array().unwrap() {
        assert!(spec.contains_key(required.as_str().unwrap()), "{required} missing");
    }
}
