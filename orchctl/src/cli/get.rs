//! `orchctl get`'s arguments: what to list (`pools`, `pool chat`, `pool/chat`), `-o
//! table|wide|name|json|yaml`, `-l` label selectors and `--watch`. Parsing only; `get.rs`
//! runs it.

use std::str::FromStr;

use clap::{Args, ValueEnum};

use super::Output;

/// What `get` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// Pools.
    Pools,
    /// Models.
    Models,
    /// Engines.
    Engines,
    /// Replicas of pools.
    Replicas,
    /// The GPU inventory.
    Gpus,
}

impl Resource {
    /// The singular word `-o name` prints (`pool/chat`).
    pub fn singular(self) -> &'static str {
        match self {
            Resource::Pools => "pool",
            Resource::Models => "model",
            Resource::Engines => "engine",
            Resource::Replicas => "replica",
            Resource::Gpus => "gpu",
        }
    }
}

impl FromStr for Resource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "pool" | "pools" => Ok(Resource::Pools),
            "model" | "models" => Ok(Resource::Models),
            "engine" | "engines" => Ok(Resource::Engines),
            "replica" | "replicas" => Ok(Resource::Replicas),
            "gpu" | "gpus" => Ok(Resource::Gpus),
            _ => Err(format!(
                "`{s}` is not something orchctl lists; use pools, models, engines, replicas or gpus"
            )),
        }
    }
}

/// `RESOURCE` or `RESOURCE/NAME` (kubectl's `pool/chat`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// What is listed.
    pub resource: Resource,
    /// The name after the slash, if any.
    pub name: Option<String>,
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((_, "")) => Err(format!("`{s}` names no object; write e.g. `pool/chat`")),
            Some((kind, name)) => Ok(Target {
                resource: kind.parse()?,
                name: Some(name.to_string()),
            }),
            None => Ok(Target {
                resource: s.parse()?,
                name: None,
            }),
        }
    }
}

/// `get`'s `-o`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum GetOutput {
    /// Aligned columns.
    #[default]
    Table,
    /// Aligned columns, with more of them.
    Wide,
    /// One `kind/name` per line, for scripts (`pool/chat`).
    Name,
    /// The objects as the daemon serves them (manifest and status), as JSON.
    Json,
    /// Pools, models and engines: their manifests as declared, which `apply -f -` and
    /// `diff -f -` take back unchanged (several as a multi-document YAML); replicas and
    /// GPUs: their status.
    Yaml,
}

impl GetOutput {
    /// The raw format, for JSON and YAML.
    pub fn raw(self) -> Option<Output> {
        match self {
            GetOutput::Json => Some(Output::Json),
            GetOutput::Yaml => Some(Output::Yaml),
            GetOutput::Table | GetOutput::Wide | GetOutput::Name => None,
        }
    }
}

/// `orchctl get`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  orchctl get pools
  orchctl get pools -o wide -l team=demo       # more columns; only pools labelled team=demo
  orchctl get pool/chat -o yaml | orchctl apply -f -
  orchctl get pools -o name                    # pool/chat lines, for scripts
  orchctl get pools --watch                    # the table, then a row for each change
  orchctl get replicas --pool chat
  orchctl get gpus

-l takes kubectl's equality selectors on metadata.labels: `team=demo`, `team!=demo`, `team`
(has the label), `!team` (has not), joined by `,` (all must hold).

-o yaml prints a pool, model or engine as declared (apiVersion, kind, metadata, spec), so it
can be edited and applied back; -o json prints what the daemon serves (manifest and status).
Env values that are shown as <redacted> must be filled in again before applying: apply refuses
them.")]
pub struct GetArgs {
    /// pools, models, engines, replicas or gpus; or one object as `kind/name` (`pool/chat`).
    #[arg(value_name = "RESOURCE")]
    pub target: Target,
    /// Only this one (a name; a replica id; a GPU index).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Replicas of this pool only.
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = GetOutput::Table)]
    pub output: GetOutput,
    /// Only objects whose labels match, e.g. `team=demo,tier!=batch` (pools, models, engines).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// After the list, print a row each time a listed object changes, until Ctrl-C or the
    /// daemon goes away.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

impl GetArgs {
    /// What is listed.
    pub fn resource(&self) -> Resource {
        self.target.resource
    }

    /// The one name asked for, from `kind/name` or `kind name`; both is an error.
    pub fn name(&self) -> anyhow::Result<Option<&str>> {
        match (&self.target.name, &self.name) {
            (Some(_), Some(extra)) => {
                anyhow::bail!("`{extra}`: give the name once, as `kind/name` or `kind name`")
            }
            (Some(n), None) | (None, Some(n)) => Ok(Some(n)),
            (None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_a_resource_or_kind_slash_name() {
        assert_eq!(
            "pool/chat".parse(),
            Ok(Target {
                resource: Resource::Pools,
                name: Some("chat".into())
            })
        );
        assert_eq!(
            "GPUS".parse(),
            Ok(Target {
                resource: Resource::Gpus,
                name: None
            })
        );
        assert!("pool/".parse::<Target>().is_err());
        assert!("widgets/x".parse::<Target>().is_err());
    }
}
