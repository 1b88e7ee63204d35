//! The environment of a run's commands and `${NAME}` expansion in non-shell
//! fields (paths, URLs, addresses).

use std::collections::BTreeMap;

/// Replaces `${NAME}` with its value. Unknown names are left as written, so
/// the mistake stays visible in the error that follows.
pub fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) if env.contains_key(&after[..end]) => {
                out.push_str(&env[&after[..end]]);
                rest = &after[end + 1..];
            }
            Some(end) => {
                out.push_str(&rest[start..start + 2 + end + 1]);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Expands `vars` in order of definition dependencies: a var may use the
/// built-ins and any other var (one level of indirection per pass, a few passes).
pub fn expand_vars(
    builtins: &BTreeMap<String, String>,
    vars: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = builtins.clone();
    env.extend(vars.clone());
    for _ in 0..8 {
        let mut changed = false;
        for name in vars.keys() {
            let expanded = expand(&env[name], &env);
            if expanded != env[name] {
                env.insert(name.clone(), expanded);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    env
}

/// Names firedrill sets for every run (docs/drill-format.md, built-in
/// variables); with every name starting
/// with `FIREDRILL_` or `KIND_`, no drill, `--var` or step output may set them.
pub const RESERVED: &[&str] = &[
    "WORKDIR",
    "RUN_ID",
    "DRILL",
    "SCENARIO_DIR",
    "RUN_DIR",
    "CLUSTER",
    "KUBECONFIG",
    "KUBECACHEDIR",
    // kwokctl's home on a kwok target: the run's own, never the user's ~/.kwok.
    "KWOK_WORKDIR",
];

/// Whether `name` is reserved to firedrill: a drill cannot move
/// its own WORKDIR, hide its processes from the sweep, or point a command
/// at another cluster.
pub fn is_reserved(name: &str) -> bool {
    RESERVED.contains(&name) || name.starts_with("FIREDRILL_") || name.starts_with("KIND_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn expands_known_names_and_keeps_unknown_ones() {
        let env = env(&[("WORKDIR", "/tmp/w")]);
        assert_eq!(expand("${WORKDIR}/data", &env), "/tmp/w/data");
        assert_eq!(expand("${NOPE}/x ${WORKDIR}", &env), "${NOPE}/x /tmp/w");
        assert_eq!(expand("tail ${", &env), "tail ${");
    }

    #[test]
    fn vars_may_use_builtins_and_each_other() {
        let builtins = env(&[("WORKDIR", "/w")]);
        let vars = env(&[("A", "${B}/a"), ("B", "${WORKDIR}/b")]);
        let all = expand_vars(&builtins, &vars);
        assert_eq!(all["A"], "/w/b/a");
        assert_eq!(all["B"], "/w/b");
    }
}
