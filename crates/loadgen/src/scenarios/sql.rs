//! Reading the services' databases for invariants with `psql` (the load generator links no
//! database driver: what it checks is what an operator would query). A server whose connection
//! slots are all taken (the services' pools fill it under load) is waited out for a while.

use std::future::Future;
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::AsyncWriteExt as _;

/// How often a command that found the server without a free connection slot is run again, and
/// how long it waits before each new attempt (10 s in all).
const FULL_RETRIES: u32 = 40;
const FULL_PAUSE: Duration = Duration::from_millis(250);

/// Whether `psql` or `pgbench` failed because the server had no connection slot left (SQLSTATE
/// 53300): under load the services' pools fill the server, and a slot frees up as soon as a pool
/// lets a connection go, so such a failure is waited out instead of failing the whole run.
pub(crate) fn server_full(stderr: &str) -> bool {
    stderr.contains("too many clients already")
        || stderr.contains("remaining connection slots are reserved")
}

/// Runs `attempt` until it succeeds, fails otherwise than with [`server_full`], or has found the
/// server full [`FULL_RETRIES`] times: its output (`program` names it in errors).
pub(crate) async fn waiting_out_a_full_server<F, Fut>(
    program: &str,
    mut attempt: F,
) -> anyhow::Result<Output>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Output>>,
{
    let mut retries = 0;
    loop {
        let output = attempt().await?;
        if output.status.success() {
            return Ok(output);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        anyhow::ensure!(
            server_full(&stderr) && retries < FULL_RETRIES,
            "{program} failed: {stderr}"
        );
        retries += 1;
        tokio::time::sleep(FULL_PAUSE).await;
    }
}

/// Runs `sql` (sent on stdin: id lists of a long run exceed a command-line argument's limit).
async fn psql(database_url: &str, sql: &str) -> anyhow::Result<String> {
    let output = waiting_out_a_full_server("psql", || psql_once(database_url, sql)).await?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One `psql` run of `sql`, whatever its exit status.
async fn psql_once(database_url: &str, sql: &str) -> anyhow::Result<Output> {
    let mut child = tokio::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-F",
            "\t",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            "-",
        ])
        .arg(database_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running psql")?;
    let mut stdin = child.stdin.take().context("psql's stdin")?;
    stdin.write_all(sql.as_bytes()).await?;
    drop(stdin);
    child.wait_with_output().await.context("waiting for psql")
}

/// One number.
pub async fn count(database_url: &str, sql: &str) -> anyhow::Result<u64> {
    let text = psql(database_url, sql).await?;
    text.trim()
        .parse()
        .with_context(|| format!("psql printed {text:?} for {sql}"))
}

/// Every row, its columns split (NULL reads as an empty string).
pub async fn rows(database_url: &str, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let text = psql(database_url, sql).await?;
    Ok(text
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect())
}

/// `'a','b'` for an SQL `IN (…)` list of ids (UUIDs the services issued, so no quoting issues;
/// a single quote is doubled all the same).
pub fn in_list<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = ids
        .into_iter()
        .map(|id| format!("'{}'", id.replace('\'', "''")))
        .collect();
    if quoted.is_empty() {
        // `IN ()` is a syntax error; this matches nothing.
        "NULL".to_owned()
    } else {
        quoted.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_server_without_free_slots_is_waited_out() {
        assert!(server_full(
            "psql: error: connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  sorry, \
             too many clients already"
        ));
        assert!(server_full(
            "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute"
        ));
        assert!(!server_full(
            "psql:<stdin>:1: ERROR:  relation \"orders\" does not exist"
        ));
    }

    #[test]
    fn an_empty_id_list_matches_nothing_and_quotes_are_doubled() {
        assert_eq!(in_list([]), "NULL");
        assert_eq!(in_list(["a", "b'c"]), "'a','b''c'");
    }
}
