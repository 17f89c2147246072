//! `orchctl tasks` (a table of queued, running and recently finished tasks, or the raw list
//! with `-o json|yaml`) and `orchctl cancel <id>`.

use std::time::Duration;

use crate::Io;
use crate::cli::{CancelArgs, Output, TasksArgs};
use crate::context::Context;
use crate::duration;
use crate::output::print_raw;
use crate::table::Table;
use llorch_manifests::task::{TaskPhase, TaskSummary};

/// ID POOL STATE PRIORITY TOKENS AGE REPLICA.
pub fn table(rows: &[TaskSummary]) -> Table {
    let mut t = Table::new(&["ID", "POOL", "STATE", "PRIORITY", "TOKENS", "AGE", "REPLICA"]);
    for r in rows {
        let priority = match r.priority {
            llorch_manifests::task::Priority::Interactive => "interactive",
            llorch_manifests::task::Priority::Batch => "batch",
        };
        t.row(vec![
            r.task_id.clone(),
            r.pool.clone(),
            r.state.as_str().to_string(),
            priority.to_string(),
            r.tokens_out.to_string(),
            duration::short(Duration::from_millis(r.age_ms)),
            r.replica.as_ref().map_or_else(|| "-".into(), ToString::to_string),
        ]);
    }
    t
}

/// `orchctl tasks`.
pub async fn list(ctx: &Context, args: &TasksArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let client = ctx.client()?;
    let raw = client.list_tasks().await?;
    match args.output {
        Output::Table => {
            let rows = raw
                .iter()
                .map(|v| serde_json::from_value::<TaskSummary>(v.clone()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("llama-orchd sent an unexpected task list: {e}"))?;
            if rows.is_empty() {
                writeln!(io.err, "No tasks found (finished tasks are kept 5 minutes).")?;
            } else {
                write!(io.out, "{}", table(&rows).render())?;
            }
        }
        format => print_raw(io.out, format, &raw)?,
    }
    Ok(0)
}

/// `orchctl cancel`.
pub async fn cancel(ctx: &Context, args: &CancelArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let client = ctx.client()?;
    let ack = client.cancel_task(&args.task_id).await?;
    if matches!(ack.previous_state, TaskPhase::Queued | TaskPhase::Running) {
        writeln!(
            io.out,
            "task {}: {} (was {}); tokens_streamed {}",
            ack.task_id,
            ack.state.as_str(),
            ack.previous_state.as_str(),
            ack.tokens_streamed
        )?;
    } else {
        writeln!(
            io.out,
            "task {}: already {}; tokens_streamed {}",
            ack.task_id,
            ack.state.as_str(),
            ack.tokens_streamed
        )?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use llorch_manifests::ReplicaId;
    use llorch_manifests::task::Priority;

    #[test]
    fn the_table_shows_age_tokens_and_a_dash_before_placement() {
        let row = |id: &str, state: TaskPhase, replica: Option<u32>| TaskSummary {
            task_id: id.into(),
            pool: "chat".into(),
            state,
            priority: Priority::Batch,
            tokens_out: 12,
            age_ms: 95_000,
            replica: replica.map(|i| ReplicaId::new("chat", i)),
            session_id: None,
            error: None,
            correlation_id: String::new(),
        };
        let text = table(&[
            row("task-a", TaskPhase::Running, Some(0)),
            row("task-b", TaskPhase::Queued, None),
        ])
        .render();
        assert_eq!(
            text,
            "\
ID       POOL   STATE     PRIORITY   TOKENS   AGE   REPLICA
task-a   chat   running   batch      12       95s   chat-0
task-b   chat   queued    batch      12       95s   -
"
        );
    }
}
