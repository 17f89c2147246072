//! `orchctl events [kind/name | kind] [--limit N]`: recent events as a table, oldest first.

use llorch_manifests::Kind;

use crate::Io;
use crate::cli::{EventsArgs, Output};
use crate::context::Context;
use crate::delete::parse_object_ref;
use crate::output::print_raw;
use crate::views;

/// `orchctl events`.
pub async fn run(ctx: &Context, args: &EventsArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let (kind, name) = match args.target.as_deref() {
        None => (None, None),
        Some(t) if t.contains('/') => {
            let r = parse_object_ref(t, None)?;
            (Some(r.kind), Some(r.name))
        }
        Some(t) => match Kind::parse_loose(t) {
            Some(kind) => (Some(kind), None),
            None => anyhow::bail!("`{t}` is neither `kind/name` nor a kind (pools, models, engines)"),
        },
    };
    let client = ctx.client()?;
    let list = client.events(kind, name.as_deref(), args.limit).await?;
    match args.output {
        Output::Table if list.events.is_empty() => writeln!(io.err, "No events found.")?,
        Output::Table => write!(io.out, "{}", views::events(&list.events).render())?,
        format => print_raw(io.out, format, &list.events)?,
    }
    Ok(0)
}
