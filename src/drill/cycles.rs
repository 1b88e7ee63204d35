//! Dependency cycles among a drill's steps: a drill whose `needs` loop can
//! never start the steps on the loop, so loading refuses it.
//!
//! This works on step positions, not ids, and in time linear in steps and
//! needs: validation runs on every load, and drills can have many thousands
//! of steps.

use std::collections::HashMap;

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::model::RawStep;

/// One concrete cycle per group of steps that need each other, each as the
/// positions (in `steps`) along it in "needs" order (`a` needs `b` ...),
/// starting from the step that comes first in the file. Sorted by the ids
/// along them. Needs that name no step and self-needs (reported on their own)
/// are left out; with duplicate ids the first step of an id is the one needed.
pub(crate) fn cycles(steps: &[RawStep]) -> Vec<Vec<usize>> {
    let mut position: HashMap<&str, usize> = HashMap::with_capacity(steps.len());
    for (index, step) in steps.iter().enumerate() {
        position.entry(step.id.as_str()).or_insert(index);
    }
    // needs[i]: the positions of the steps step i needs.
    let needs: Vec<Vec<usize>> = steps
        .iter()
        .map(|step| {
            step.needs
                .iter()
                .filter(|need| need.value != step.id.value)
                .filter_map(|need| position.get(need.as_str()).copied())
                .collect()
        })
        .collect();
    let mut cycles = cycles_in(&needs);
    let id = |index: &usize| steps[*index].id.as_str();
    cycles.sort_by(|a, b| a.iter().map(id).cmp(b.iter().map(id)));
    cycles
}

/// One cycle per strongly connected component of more than one step, in
/// the graph where step `i` needs the steps `needs[i]`.
fn cycles_in(needs: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut graph: DiGraph<(), ()> = DiGraph::with_capacity(needs.len(), 0);
    for _ in 0..needs.len() {
        graph.add_node(());
    }
    for (step, its_needs) in needs.iter().enumerate() {
        for &need in its_needs {
            graph.add_edge(NodeIndex::new(need), NodeIndex::new(step), ());
        }
    }
    let mut in_component = vec![false; needs.len()];
    let mut on_path = vec![false; needs.len()];
    let mut cycles = Vec::new();
    // Kosaraju's, not petgraph's Tarjan: that one recurses once per step of
    // a chain and overflowed the stack on long drills.
    for component in kosaraju_scc(&graph) {
        if component.len() < 2 {
            continue;
        }
        let members: Vec<usize> = component.iter().map(|node| node.index()).collect();
        for &member in &members {
            in_component[member] = true;
        }
        cycles.push(walk_back(&members, needs, &in_component, &mut on_path));
        for &member in &members {
            in_component[member] = false;
        }
    }
    cycles
}

/// From the component's first step, follows needs inside the component (the
/// way back to the start if there is one, else the earliest step not yet on
/// the path) until the start is reached again: one concrete cycle.
fn walk_back(
    members: &[usize],
    needs: &[Vec<usize>],
    in_component: &[bool],
    on_path: &mut [bool],
) -> Vec<usize> {
    let start = members.iter().copied().min().unwrap_or_default();
    let mut path = vec![start];
    on_path[start] = true;
    let mut current = start;
    let cycle = loop {
        let candidates = needs[current].iter().copied().filter(|n| in_component[*n]);
        let next = if candidates.clone().any(|n| n == start) {
            Some(start)
        } else {
            candidates.filter(|n| !on_path[*n]).min()
        };
        match next {
            Some(next) if next == start => break path.clone(),
            Some(next) => {
                on_path[next] = true;
                path.push(next);
                current = next;
            }
            // A dead end (every need inside the component already on the
            // path): report the component as it is.
            None => {
                let mut all = members.to_vec();
                all.sort_unstable();
                break all;
            }
        }
    };
    for &step in &path {
        on_path[step] = false;
    }
    cycle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_is_walked_from_its_first_step_along_needs() {
        // 0 needs 2, 1 needs 0, 2 needs 1; 3 needs 0 but is on no cycle.
        let needs = vec![vec![2], vec![0], vec![1], vec![0]];
        assert_eq!(cycles_in(&needs), vec![vec![0, 2, 1]]);
        assert!(cycles_in(&[vec![], vec![0], vec![1]]).is_empty());
    }

    #[test]
    fn a_chain_of_many_steps_does_not_exhaust_the_stack() {
        // Step i needs step i - 1, and the first needs the last: one cycle
        // through every step. A recursive search overflowed here.
        let steps: usize = 200_000;
        let mut needs: Vec<Vec<usize>> = (0..steps).map(|i| vec![i.wrapping_sub(1)]).collect();
        needs[0] = vec![steps - 1];
        let cycles = cycles_in(&needs);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), steps);
        assert_eq!(cycles[0][..3], [0, steps - 1, steps - 2]);
    }
}
