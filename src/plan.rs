//! The dependency graph of a drill: build, stages, and the formats
//! of `firedrill plan`.

use std::collections::BTreeMap;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use crate::drill::{ActionKind, Drill, Step};

/// The graph: one node per step, an edge from each need to the step that needs it.
pub struct Graph<'a> {
    graph: DiGraph<&'a Step, ()>,
    index: BTreeMap<&'a str, NodeIndex>,
}

impl<'a> Graph<'a> {
    /// Builds the graph; needs that name no step (validation reports them) and
    /// self-needs are left out.
    pub fn build(drill: &'a Drill) -> Graph<'a> {
        let mut graph = DiGraph::new();
        let mut index = BTreeMap::new();
        for step in &drill.steps {
            let node = graph.add_node(step);
            index.entry(step.id.as_str()).or_insert(node);
        }
        // Duplicate needs give one edge. (A set, not `update_edge`, which
        // scans a node's edges and made wide fan-outs quadratic.)
        let mut edges = std::collections::HashSet::new();
        for step in &drill.steps {
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
    match step.action() {
        ActionKind::Run => format!("run: {}", first_line(step.run.as_deref().unwrap_or(""))),
        ActionKind::Fault => {
            let fault = step.fault.as_ref().map(|f| &f.value);
            let kind = fault.map_or("?", |f| f.kind());
            let detail = fault.map(fault_detail).unwrap_or_default();
            if detail.is_empty() {
                format!("fault: {kind}")
            } else {
                format!("fault: {kind} {detail}")
            }
        }
        ActionKind::Recover => match step.recover.as_ref().map(|r| &r.value) {
            Some(recover) => match (&recover.runbook, &recover.run) {
                (Some(runbook), _) => format!("recover: runbook {}", runbook.value),
                (_, Some(run)) => format!("recover: run: {}", first_line(run)),
                _ => "recover".into(),
            },
            None => "recover".into(),
        },
        ActionKind::Probe => format!(
            "probe: {}",
            step.probe
                .as_ref()
                .map(|p| p.names().join(", "))
                .unwrap_or_default()
        ),
        ActionKind::Wait => format!(
            "wait: {}",
            step.wait
                .map(|d| crate::duration::format_duration(d.0))
                .unwrap_or_default()
        ),
        ActionKind::Apply => format!(
            "apply: {}",
            step.apply
                .as_ref()
                .map(|m| m
                    .iter()
                    .map(|p| p.value.clone())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
    }
}

fn fault_detail(fault: &crate::drill::Fault) -> String {
    if let Some(kill) = &fault.kill {
        return format!(
            "{} ({})",
            kill.service.names().join(", "),
            kill.signal.as_ref().map_or("KILL", |s| s.as_str())
        );
    }
    if let Some(pause) = &fault.pause {
        return pause.service.names().join(", ");
    }
    if let Some(delete) = &fault.delete {
        if let Some(paths) = &delete.path {
            return paths.names().join(", ");
        }
        return format!(
            "{} {}",
            delete.kind.as_deref().unwrap_or(""),
            delete
                .name
                .as_deref()
                .or(delete.selector.as_deref())
                .unwrap_or("")
        );
    }
    if let Some(corrupt) = &fault.corrupt {
        return format!("{} ({} bytes)", corrupt.path, corrupt.bytes.unwrap_or(64));
    }
    if let Some(run) = &fault.run {
        return first_line(run);
    }
    if let Some(selector) = fault.node_selector() {
        return match (&selector.node, &selector.role) {
            (Some(node), _) => node.clone(),
            (_, Some(role)) => format!("{} × {}", selector.count.unwrap_or(1), role.value),
            _ => String::new(),
        };
    }
    if let Some(pod_kill) = &fault.pod_kill {
        return format!("{}/{}", pod_kill.namespace, pod_kill.selector);
    }
    String::new()
}

fn first_line(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or("");
    let mut short: String = line.chars().take(70).collect();
    if short.len() < line.len() || text.trim().lines().count() > 1 {
        short.push('…');
    }
    short
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

fn node_label(step: &Step) -> String {
    format!("{}\\n{}", step.id.value, describe_action(step)).replace('"', "'")
}

/// `firedrill plan --format dot` (Graphviz).
pub fn render_dot(drill: &Drill) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n",
        drill.name
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
            step.id.value,
            node_label(step)
        ));
    }
    for step in &drill.steps {
        for need in &step.needs {
            out.push_str(&format!("  \"{}\" -> \"{}\";\n", need.value, step.id.value));
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
        let label = format!("{}<br/>{}", step.id.value, describe_action(step)).replace('"', "'");
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
