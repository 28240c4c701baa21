//! Reading the services' databases for invariants with `psql` (the load generator links no
//! database driver: what it checks is what an operator would query).

use std::process::Stdio;

use anyhow::Context as _;
use tokio::io::AsyncWriteExt as _;

/// Runs `sql` (sent on stdin: id lists of a long run exceed a command-line argument's limit).
async fn psql(database_url: &str, sql: &str) -> anyhow::Result<String> {
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
    let output = child.wait_with_output().await.context("waiting for psql")?;
    anyhow::ensure!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
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
