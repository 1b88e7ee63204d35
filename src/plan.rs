//! The dependency graph of a drill: build, stages, and the formats
//! of `firedrill plan`.

use std::collections::BTreeMap;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use crate::drill::{Action, ActionKind, Drill, Step};
use crate::text::short_line;

/// The graph: one node per step, an edge from each need to the step that needs it.
pub struct Graph<'a> {
    graph: DiGraph<&'a Step, ()>,
    index: BTreeMap<&'a str, NodeIndex>,
}

impl<'a> Graph<'a> {
    /// Builds the graph of a drill; needs that name no step (validation
    /// reports them) and self-needs are left out.
    pub fn build(drill: &'a Drill) -> Graph<'a> {
        let steps = &drill.steps;
        let mut graph = DiGraph::new();
        let mut index = BTreeMap::new();
        for step in steps {
            let node = graph.add_node(step);
            index.entry(step.id.as_str()).or_insert(node);
        }
        // Duplicate needs give one edge. (A set, not `update_edge`, which
        // scans a node's edges and made wide fan-outs quadratic.)
        let mut edges = std::collections::HashSet::new();
        for step in steps {
            let Some(&to) = index.get(step.id.as_str()) else {
                continue;
            };
            for need in &step.needs {
                if need.value == step.id.value {
                    continue;
                }
                if let Some(&from) = index.get(need.as_str())
                    && edges.insert((from, to))
                {
                    graph.add_edge(from, to, ());
                }
            }
        }
        Graph { graph, index }
    }

    /// Steps grouped in stages: each stage's steps need only earlier stages,
    /// so they can run together. Empty if the graph has a cycle.
    pub fn stages(&self) -> Vec<Vec<&'a Step>> {
        let Ok(order) = petgraph::algo::toposort(&self.graph, None) else {
            return Vec::new();
        };
        let mut depth: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        for node in &order {
            let d = self
                .graph
                .neighbors_directed(*node, petgraph::Direction::Incoming)
                .map(|need| depth.get(&need).copied().unwrap_or(0) + 1)
                .max()
                .unwrap_or(0);
            depth.insert(*node, d);
        }
        let max = depth.values().copied().max().map_or(0, |m| m + 1);
        let mut stages: Vec<Vec<&Step>> = vec![Vec::new(); max];
        // Keep file order inside a stage.
        let mut nodes: Vec<NodeIndex> = self.graph.node_indices().collect();
        nodes.sort();
        for node in nodes {
            if let Some(d) = depth.get(&node) {
                stages[*d].push(self.graph[node]);
            }
        }
        stages
    }

    /// The ids of the steps a step needs, as the graph has them.
    pub fn needs_of(&self, id: &str) -> Vec<&'a str> {
        let Some(&node) = self.index.get(id) else {
            return Vec::new();
        };
        let mut needs: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(node, petgraph::Direction::Incoming)
            .collect();
        needs.sort();
        needs
            .into_iter()
            .map(|n| self.graph[n].id.as_str())
            .collect()
    }

    /// The ids of the steps that need a step, transitively.
    pub fn dependents_of(&self, id: &str) -> Vec<&'a str> {
        let Some(&node) = self.index.get(id) else {
            return Vec::new();
        };
        let mut dfs = petgraph::visit::Dfs::new(&self.graph, node);
        let mut found = Vec::new();
        while let Some(n) = dfs.next(&self.graph) {
            if n != node {
                found.push(n);
            }
        }
        found.sort();
        found
            .into_iter()
            .map(|n| self.graph[n].id.as_str())
            .collect()
    }
}

/// A one-line summary of what a step does, for plans and progress.
pub fn describe_action(step: &Step) -> String {
    match &step.action {
        Action::Run(run) => format!("run: {}", short_line(run)),
        Action::Fault(fault) => {
            let kind = fault.spec.kind();
            let detail = fault.spec.describe();
            if detail.is_empty() {
                format!("fault: {kind}")
            } else {
                format!("fault: {kind} {detail}")
            }
        }
        Action::Recover(recover) => match (&recover.runbook, &recover.run, &recover.manual) {
            (Some(runbook), _, _) => format!("recover: runbook {}", runbook.value),
            (_, Some(run), _) => format!("recover: run: {}", short_line(run)),
            (_, _, Some(manual)) => format!(
                "recover by hand within {}{} (the drill's variables for people: source RUN_DIR/people.env)",
                crate::duration::format_duration(manual.timeout.0),
                manual
                    .runbook
                    .as_ref()
                    .map_or_else(String::new, |runbook| format!(
                        ", runbook {}",
                        runbook.value
                    ))
            ),
            (None, None, None) => "recover".into(),
        },
        Action::Probe(probes) => format!("probe: {}", probes.names().join(", ")),
        Action::Wait(wait) => format!("wait: {}", crate::duration::format_duration(wait.0)),
        Action::Apply(manifests) => format!(
            "apply: {}",
            manifests
                .iter()
                .map(|p| p.value.clone())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `firedrill plan --format text`.
pub fn render_text(drill: &Drill) -> String {
    let graph = Graph::build(drill);
    let mut out = format!(
        "drill {} ({} target, {} steps)\n",
        drill.name,
        drill.target.name(),
        drill.steps.len()
    );
    for (number, stage) in graph.stages().iter().enumerate() {
        let together = if stage.len() > 1 {
            " — these run together"
        } else {
            ""
        };
        out.push_str(&format!("\nstage {}{together}\n", number + 1));
        for step in stage {
            out.push_str(&format!(
                "  {:<20} {}\n",
                step.id.value,
                describe_action(step)
            ));
            let needs = graph.needs_of(&step.id);
            if !needs.is_empty() {
                out.push_str(&format!("  {:<20} needs {}\n", "", needs.join(", ")));
            }
        }
    }
    out
}

/// Text inside a DOT double-quoted string: `"` and `\` escaped, line
/// breaks as DOT's `\n`, so a command reads exactly as written.
fn dot_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Text inside a quoted Mermaid label, which Mermaid renders as HTML: its
/// entity codes (`#quot;`, `#lt;`, ...) stand for the characters that would
/// end the label or become markup.
fn mermaid_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '\n' => out.push_str("<br/>"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

fn node_label(step: &Step) -> String {
    format!(
        "{}\\n{}",
        dot_quote(&step.id.value),
        dot_quote(&describe_action(step))
    )
}

/// `firedrill plan --format dot` (Graphviz).
pub fn render_dot(drill: &Drill) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n",
        dot_quote(&drill.name)
    );
    for step in &drill.steps {
        let color = match step.action() {
            ActionKind::Fault => ", color=red",
            ActionKind::Recover => ", color=darkgreen",
            ActionKind::Probe => ", color=blue",
            _ => "",
        };
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\"{color}];\n",
            dot_quote(&step.id.value),
            node_label(step)
        ));
    }
    for step in &drill.steps {
        for need in &step.needs {
            out.push_str(&format!(
                "  \"{}\" -> \"{}\";\n",
                dot_quote(&need.value),
                dot_quote(&step.id.value)
            ));
        }
    }
    out.push_str("}\n");
    out
}

/// `firedrill plan --format mermaid`.
pub fn render_mermaid(drill: &Drill) -> String {
    let mut out = String::from("flowchart LR\n");
    let mermaid_id = |id: &str| id.replace('-', "_");
    for step in &drill.steps {
        let label = format!(
            "{}<br/>{}",
            mermaid_quote(&step.id.value),
            mermaid_quote(&describe_action(step))
        );
        let (open, close) = match step.action() {
            ActionKind::Fault => ("{{", "}}"),
            ActionKind::Recover => ("([", "])"),
            _ => ("[", "]"),
        };
        out.push_str(&format!(
            "  {}{open}\"{label}\"{close}\n",
            mermaid_id(&step.id)
        ));
    }
    for step in &drill.steps {
        for need in &step.needs {
            out.push_str(&format!(
                "  {} --> {}\n",
                mermaid_id(&need.value),
                mermaid_id(&step.id)
            ));
        }
    }
    out
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    drill: &'a str,
    target: &'a str,
    stages: Vec<Vec<JsonStep<'a>>>,
}

#[derive(Serialize)]
struct JsonStep<'a> {
    id: &'a str,
    action: &'static str,
    summary: String,
    needs: Vec<&'a str>,
}

/// `firedrill plan --format json`.
pub fn render_json(drill: &Drill) -> String {
    let graph = Graph::build(drill);
    let stages = graph
        .stages()
        .into_iter()
        .map(|stage| {
            stage
                .into_iter()
                .map(|step| JsonStep {
                    id: step.id.as_str(),
                    action: step.action().key(),
                    summary: describe_action(step),
                    needs: graph.needs_of(&step.id),
                })
                .collect()
        })
        .collect();
    serde_json::to_string_pretty(&JsonPlan {
        drill: &drill.name,
        target: drill.target.name(),
        stages,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drill(target: &str, steps: &str) -> Drill {
        let text = format!(
            "version: 1\nname: d\ntarget: {target}\nobjectives: {{rto: 1m}}\n{}steps:\n{steps}  - id: fix\n    needs: [a]\n    recover: {{run: 'true'}}\n",
            if target == "local" {
                "services: {web: {run: sleep 100}, db: {run: sleep 100}}\n"
            } else {
                // API faults must stay inside the drill's namespaces.
                "scope: {namespaces: [shop]}\n"
            }
        );
        crate::drill::parse_source(&text, std::path::Path::new("."))
            .unwrap_or_else(|problems| panic!("{problems:?}"))
    }

    fn described(drill: &Drill) -> Vec<String> {
        drill.steps.iter().map(describe_action).collect()
    }

    #[test]
    fn local_faults_are_described_by_what_they_hit() {
        let drill = drill(
            "local",
            "  - id: a\n    fault: {kill: {service: [web, db], signal: SIGTERM}}\n  - id: b\n    fault: {kill: {service: web}}\n  - id: c\n    fault: {pause: {service: db, duration: 5s}}\n  - id: d\n    fault: {delete: {path: [\"$WORKDIR/a\", \"$WORKDIR/b\"]}}\n  - id: e\n    fault: {corrupt: {path: \"$WORKDIR/f\"}}\n  - id: f\n    fault: {run: \"echo one\\necho two\", revert: \"echo undo\"}\n",
        );
        assert_eq!(
            described(&drill),
            [
                "fault: kill web, db (TERM)",
                "fault: kill web (KILL)",
                "fault: pause db",
                "fault: delete $WORKDIR/a, $WORKDIR/b",
                "fault: corrupt $WORKDIR/f (64 bytes)",
                "fault: run echo one…",
                "recover: run: true",
            ]
        );
    }

    #[test]
    fn kind_and_kubernetes_faults_are_described_by_what_they_hit() {
        let drill = drill(
            "{kind: {cluster: c}}",
            "  - id: a\n    fault: {stop_node: {role: worker, count: 2}}\n  - id: b\n    fault: {partition_node: {node: c-worker}}\n  - id: c\n    fault: {delete_cluster: {}}\n  - id: d\n    fault: {control_plane_down: {}}\n  - id: e\n    fault: {pod_kill: {namespace: shop, selector: app=web, percent: 50}}\n  - id: f\n    fault: {delete: {kind: Namespace, name: shop}}\n  - id: g\n    fault: {drain_node: {role: worker}}\n",
        );
        assert_eq!(
            described(&drill),
            [
                "fault: stop_node 2 × worker",
                "fault: partition_node c-worker",
                "fault: delete_cluster",
                "fault: control_plane_down",
                "fault: pod_kill shop/app=web",
                "fault: delete Namespace shop",
                "fault: drain_node 1 × worker",
                "recover: run: true",
            ]
        );
    }

    #[test]
    fn dot_and_mermaid_escape_labels_without_changing_the_command() {
        let drill = drill(
            "local",
            "  - id: a\n    fault: {run: 'mkdir -p \"$SITE\" && echo \\ #1 <b> & done', revert: 'true'}\n",
        );
        let dot = render_dot(&drill);
        assert!(
            dot.contains(r#"label="a\nfault: run mkdir -p \"$SITE\" && echo \\ #1 <b> & done""#),
            "{dot}"
        );
        assert!(!dot.contains("'$SITE'"), "{dot}");
        let mermaid = render_mermaid(&drill);
        assert!(
            mermaid.contains(
                r#"a{{"a<br/>fault: run mkdir -p #quot;$SITE#quot; #amp;#amp; echo \ #35;1 #lt;b#gt; #amp; done"}}"#
            ),
            "{mermaid}"
        );
        assert!(!mermaid.contains("'$SITE'"), "{mermaid}");
    }
}
