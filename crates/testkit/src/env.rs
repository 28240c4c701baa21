//! Where the test servers are: environment variables with local defaults.

/// The variable naming the PostgreSQL server (an admin database URL).
pub const DATABASE_URL_VAR: &str = "MERCATO_TEST_DATABASE_URL";
/// The variable naming the RabbitMQ server.
pub const AMQP_URL_VAR: &str = "MERCATO_TEST_AMQP_URL";
/// The variable naming the Redis server.
pub const REDIS_URL_VAR: &str = "MERCATO_TEST_REDIS_URL";

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The PostgreSQL admin URL (must be allowed to create and drop databases).
pub fn database_url() -> String {
    var_or(DATABASE_URL_VAR, DEFAULT_DATABASE_URL)
}

/// The RabbitMQ URL.
pub fn amqp_url() -> String {
    var_or(AMQP_URL_VAR, DEFAULT_AMQP_URL)
}

/// The Redis URL.
pub fn redis_url() -> String {
    var_or(REDIS_URL_VAR, DEFAULT_REDIS_URL)
}

fn var_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The `host:port` of a URL such as `amqp://user:pass@host:5672/vhost`.
pub fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host_port = &rest[..end];
    Some(host_port.rsplit_once('@').map_or(host_port, |(_, hp)| hp))
}

/// `url` with its `host:port` replaced by `new_authority` (credentials, path and query kept).
pub fn with_authority(url: &str, new_authority: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host_part, tail) = rest.split_at(end);
    let userinfo = host_part.rsplit_once('@').map(|(user, _)| user);
    Some(match userinfo {
        Some(user) => format!("{scheme}://{user}@{new_authority}{tail}"),
        None => format!("{scheme}://{new_authority}{tail}"),
    })
}

/// `url` with its path (the database name) replaced by `database`.
pub fn with_database(url: &str, database: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let (without_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = without_query
        .split_once('/')
        .map_or(without_query, |(a, _)| a);
    Some(match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authority_skips_credentials_and_path() {
        assert_eq!(
            authority("amqp://guest:guest@127.0.0.1:5672/%2f"),
            Some("127.0.0.1:5672")
        );
        assert_eq!(authority("redis://127.0.0.1:6379"), Some("127.0.0.1:6379"));
    }

    #[test]
    fn replacing_the_authority_keeps_credentials_and_vhost() {
        assert_eq!(
            with_authority(
                "amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=5",
                "127.0.0.1:4000"
            ),
            Some("amqp://guest:guest@127.0.0.1:4000/%2f?heartbeat=5".to_owned())
        );
    }

    #[test]
    fn replacing_the_database_keeps_the_query() {
        assert_eq!(
            with_database(
                "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
                "t1"
            ),
            Some("postgres://postgres@127.0.0.1:5432/t1?sslmode=disable".to_owned())
        );
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432", "t1"),
            Some("postgres://postgres@127.0.0.1:5432/t1".to_owned())
        );
    }
}
