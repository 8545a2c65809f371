//! One module per subcommand.

pub mod agent;
pub mod baselines;
pub mod demo;
pub mod hunt;
pub mod incidents;
pub mod ingest;
pub mod report;
pub mod respond;
pub mod rules;
pub mod search;
pub mod server;
pub mod store;
pub mod tokens;
pub mod verify;

/// Parses a `--since` duration in the grammar of [`crowsnest_model::duration`] (`30s`, `15m`,
/// `1h`, `7d`, `1h30m`, ...).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crowsnest_model::parse_duration(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").map(|d| d.as_secs()), Ok(90));
        assert_eq!(parse_duration("15m").map(|d| d.as_secs()), Ok(900));
        assert_eq!(parse_duration("1h").map(|d| d.as_secs()), Ok(3600));
        assert_eq!(parse_duration("2d").map(|d| d.as_secs()), Ok(172_800));
        assert_eq!(parse_duration("1w").map(|d| d.as_secs()), Ok(604_800));
        assert_eq!(parse_duration("1h30m").map(|d| d.as_secs()), Ok(5_400));
        assert_eq!(
            parse_duration("90"),
            Err(
                "`90` is not a duration (time unit needed, for example 90sec or 90ms); \
                 write a number and a unit, like 30s, 15m, 6h, 7d or 1h30m"
                    .to_string()
            )
        );
        assert!(parse_duration("1q").is_err_and(|e| e.contains("unknown time unit")));
        assert!(parse_duration("h").is_err());
        assert_eq!(
            parse_duration("999999999999d"),
            Err("`999999999999d` is longer than 100 years".to_string())
        );
    }
}
