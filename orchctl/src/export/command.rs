//! Running `orchctl export`: gathers the objects (the `-f` input when given, else what the
//! daemon named by `--server` declares, else the manifests directory), renders them, writes
//! multi-document YAML to stdout and notes and refusals to stderr. Nothing is written to
//! stdout when anything named is refused, so `orchctl export … | kubectl apply -f -` never
//! applies half a set.

use std::collections::BTreeMap;

use llorch_controller::manifest_dir::ManifestDir;
use llorch_manifests::config::GpuConfig;
use llorch_manifests::model::ModelRef;
use llorch_manifests::parse::Located;
use llorch_manifests::{AnyObject, Kind};

use super::gateway::GatewayOptions;
use super::kubeai::KubeAiOptions;
use super::{Export, Options};
use crate::Io;
use crate::cli::{ExportArgs, ExportFormat};
use crate::context::{Context, WriteTarget};

/// Runs `orchctl export kubernetes`. Exit 0 when everything named was exported, 1 otherwise.
pub async fn run(ctx: &Context, args: &ExportArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let (objects, source) = gather(ctx, args, io).await?;
    let mut pools = Vec::new();
    for target in &args.pools {
        let r = crate::delete::parse_object_ref(target, None)?;
        anyhow::ensure!(
            r.kind == Kind::Pool,
            "`orchctl export` exports Pools: write `pool/{}`",
            r.name
        );
        pools.push(r.name);
    }
    let export = match args.format {
        ExportFormat::Manifests => super::kubernetes(&objects, &pools, &options(ctx, args, &objects)),
        ExportFormat::Kubeai => {
            anyhow::ensure!(
                !args.with_gateway,
                "--with-gateway puts llama-orchd in front of the exported Services; KubeAI brings its own front door: use one or the other"
            );
            super::kubeai(
                &objects,
                &pools,
                &KubeAiOptions {
                    namespace: args.namespace.clone(),
                    resource_profile: args.resource_profile.clone(),
                },
            )
        }
    };
    write(&export, &source, io)
}

fn options(ctx: &Context, args: &ExportArgs, objects: &[AnyObject]) -> Options {
    Options {
        namespace: args.namespace.clone(),
        gpu_product: args.gpu_product.clone(),
        fetch_image: args.fetch_image.clone(),
        simulated_gpus: matches!(ctx.config.gpus, GpuConfig::Simulate(_)),
        model_sizes: model_sizes(objects),
        gateway: args.with_gateway.then(|| GatewayOptions {
            image: args.gateway_image.clone(),
        }),
    }
}

/// The size of each `file:` Model's file that is on this machine.
fn model_sizes(objects: &[AnyObject]) -> BTreeMap<String, u64> {
    objects
        .iter()
        .filter_map(|o| match o {
            AnyObject::Model(m) => match m.spec.parse_ref() {
                Ok(ModelRef::File(path)) => std::fs::metadata(path)
                    .ok()
                    .filter(std::fs::Metadata::is_file)
                    .map(|meta| (m.name().to_string(), meta.len())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The objects to export and a phrase that says where they came from. Broken files and a set
/// whose references do not hold are errors: a Pool the daemon would not run is not exported.
async fn gather(ctx: &Context, args: &ExportArgs, io: &mut Io<'_>) -> anyhow::Result<(Vec<AnyObject>, String)> {
    let (located, source): (Vec<Located>, String) = if !args.files.is_empty() {
        let input = crate::input::read_objects(&args.files, io.input)?;
        (input.into_iter().map(|i| i.located).collect(), args.files.join(", "))
    } else {
        match ctx.writes {
            WriteTarget::Directory => {
                let dir = ManifestDir::read(&ctx.manifests_dir)?;
                let broken: Vec<String> = dir
                    .broken()
                    .filter_map(|f| f.parsed.as_ref().err())
                    .flatten()
                    .map(ToString::to_string)
                    .collect();
                anyhow::ensure!(
                    broken.is_empty(),
                    "{}\nfix the manifests above first: export reads the directory as the daemon does",
                    broken.join("\n")
                );
                (
                    dir.objects().cloned().collect(),
                    ctx.manifests_dir.display().to_string(),
                )
            }
            WriteTarget::Api => {
                let snapshot = ctx.client()?.snapshot().await?;
                (
                    crate::plan::declared(&snapshot),
                    format!("what llama-orchd at {} declares", ctx.server),
                )
            }
        }
    };
    let errors = llorch_manifests::validate::check_set(&located);
    anyhow::ensure!(
        errors.is_empty(),
        "{}\nnothing exported: {source} does not hold together",
        errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    );
    Ok((located.into_iter().map(|l| l.object).collect(), source))
}

/// Writes the objects (only when nothing was refused), the notes and the refusals.
fn write(export: &Export, source: &str, io: &mut Io<'_>) -> anyhow::Result<u8> {
    for r in &export.refusals {
        writeln!(io.err, "error: {r}")?;
    }
    if !export.refusals.is_empty() {
        writeln!(
            io.err,
            "nothing exported: {} Pool(s) cannot run on Kubernetes as declared; fix them, or name the Pools to export (`orchctl export kubernetes pool/NAME …`)",
            export.refusals.len()
        )?;
        return Ok(1);
    }
    anyhow::ensure!(!export.objects.is_empty(), "{source} declares no Pool to export");
    writeln!(
        io.out,
        "# Exported by orchctl {}: {} object{} (docs/kubernetes.md)",
        env!("CARGO_PKG_VERSION"),
        export.objects.len(),
        if export.objects.len() == 1 { "" } else { "s" }
    )?;
    for object in &export.objects {
        writeln!(io.out, "---")?;
        let text = serde_saphyr::to_string(object)?;
        write!(io.out, "{text}")?;
        if !text.ends_with('\n') {
            writeln!(io.out)?;
        }
    }
    for n in &export.notes {
        writeln!(io.err, "note: {n}")?;
    }
    Ok(0)
}
