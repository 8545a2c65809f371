//! One module per subcommand.

pub mod agent;
pub mod demo;
pub mod hunt;
pub mod ingest;
pub mod rules;
pub mod search;
pub mod server;

/// Parses a duration like `30s`, `15m`, `1h`, `7d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        format!("invalid duration `{text}`: expected a number and a unit, like 15m, 1h, 7d")
    })?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 604_800,
        other => {
            return Err(format!(
                "invalid duration unit `{other}` in `{text}`: use s, m, h, d or w"
            ))
        }
    };
    Ok(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").map(|d| d.as_secs()), Ok(90));
        assert_eq!(parse_duration("15m").map(|d| d.as_secs()), Ok(900));
        assert_eq!(parse_duration("1h").map(|d| d.as_secs()), Ok(3600));
        assert_eq!(parse_duration("2d").map(|d| d.as_secs()), Ok(172_800));
        assert!(parse_duration("1y").is_err_and(|e| e.contains("unit")));
        assert!(parse_duration("h").is_err());
    }
}
