//! The one glob match of the workspace: suppressions and rule names (detect), playbooks,
//! guards and per-rule incident grouping (respond), mapping datasets (mapping).

/// `*` matches any run of characters (none included), `?` exactly one; everything else
/// itself, case-sensitive. Without wildcards it is equality. Linear backtracking over the
/// last `*`, so a hostile pattern costs at most pattern × text steps.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn stars_questions_and_literals() {
        assert!(glob("build-*", "build-42"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(glob("*.kube-system.*", "x.kube-system.svc"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(glob("é*", "été"));
        assert!(!glob("a*b*c", "aXcYb"));
        assert!(!glob("build-*", "web-build-1"));
        assert!(!glob("abc", "abcd"));
        assert!(!glob("ab*ba", "aba"));
        assert!(!glob("?", ""));
    }
}
