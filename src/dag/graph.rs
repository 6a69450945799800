//! The dependency graph of a DAG's tasks, on petgraph. Built once at load; the executor reads
//! upstream and downstream lists by task index and never walks the graph itself.

use std::collections::HashMap;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

/// Tasks indexed in topological order (upstream before downstream).
#[derive(Debug, Clone)]
pub struct DagGraph {
    /// Edges point from upstream to downstream; node `i` is the task at index `i`.
    graph: DiGraph<String, ()>,
    index: HashMap<String, usize>,
    upstream: Vec<Vec<usize>>,
    downstream: Vec<Vec<usize>>,
}

/// A dependency cycle, as the chain of task ids that closes it (`a -> b -> a`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<String>);

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(" -> "))
    }
}

impl DagGraph {
    /// Builds the graph from `(task, its direct upstream tasks)`, all of which must name tasks
    /// in the list. Returns every cycle when there are any.
    pub fn build(tasks: &[(String, Vec<String>)]) -> Result<(DagGraph, Vec<usize>), Vec<Cycle>> {
        let mut g: DiGraph<String, ()> = DiGraph::with_capacity(tasks.len(), tasks.len());
        let nodes: HashMap<&str, NodeIndex> = tasks
            .iter()
            .map(|(id, _)| (id.as_str(), g.add_node(id.clone())))
            .collect();
        for (id, ups) in tasks {
            for up in ups {
                if let (Some(&from), Some(&to)) = (nodes.get(up.as_str()), nodes.get(id.as_str())) {
                    g.update_edge(from, to, ());
                }
            }
        }
        let order = match toposort(&g, None) {
            Ok(order) => order,
            Err(_) => return Err(cycles(&g)),
        };

        // Re-number nodes so that index order is topological order.
        let position: HashMap<NodeIndex, usize> =
            order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        let mut sorted: DiGraph<String, ()> = DiGraph::with_capacity(order.len(), g.edge_count());
        for &n in &order {
            sorted.add_node(g[n].clone());
        }
        for e in g.edge_references() {
            sorted.add_edge(
                NodeIndex::new(position[&e.source()]),
                NodeIndex::new(position[&e.target()]),
                (),
            );
        }
        let mut upstream = vec![Vec::new(); order.len()];
        let mut downstream = vec![Vec::new(); order.len()];
        for e in sorted.edge_references() {
            upstream[e.target().index()].push(e.source().index());
            downstream[e.source().index()].push(e.target().index());
        }
        for list in upstream.iter_mut().chain(downstream.iter_mut()) {
            list.sort_unstable();
        }
        let index = sorted
            .node_indices()
            .map(|n| (sorted[n].clone(), n.index()))
            .collect();
        // `original[i]` is the position in `tasks` of the task now at index `i`.
        let original = order.iter().map(|n| n.index()).collect();
        Ok((
            DagGraph {
                graph: sorted,
                index,
                upstream,
                downstream,
            },
            original,
        ))
    }

    pub fn len(&self) -> usize {
        self.upstream.len()
    }

    pub fn is_empty(&self) -> bool {
        self.upstream.is_empty()
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    pub fn id(&self, i: usize) -> &str {
        &self.graph[NodeIndex::new(i)]
    }

    pub fn upstream(&self, i: usize) -> &[usize] {
        &self.upstream[i]
    }

    pub fn downstream(&self, i: usize) -> &[usize] {
        &self.downstream[i]
    }

    /// True when `ancestor` is upstream of `task`, directly or through other tasks.
    pub fn is_upstream_of(&self, ancestor: usize, task: usize) -> bool {
        ancestor != task
            && petgraph::algo::has_path_connecting(
                &self.graph,
                NodeIndex::new(ancestor),
                NodeIndex::new(task),
                None,
            )
    }

    /// Every task downstream of `i`, directly or through others.
    pub fn descendants(&self, i: usize) -> Vec<usize> {
        self.reach(i, |g, n| &g.downstream[n])
    }

    /// Every task upstream of `i`, directly or through others.
    pub fn ancestors(&self, i: usize) -> Vec<usize> {
        self.reach(i, |g, n| &g.upstream[n])
    }

    fn reach(&self, i: usize, next: impl Fn(&Self, usize) -> &[usize]) -> Vec<usize> {
        let mut seen = vec![false; self.len()];
        let mut stack = next(self, i).to_vec();
        let mut out = Vec::new();
        while let Some(n) = stack.pop() {
            if !std::mem::replace(&mut seen[n], true) {
                out.push(n);
                stack.extend_from_slice(next(self, n));
            }
        }
        out.sort_unstable();
        out
    }

    /// Tasks with nothing downstream; their states decide the run's state.
    pub fn leaves(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(|&i| self.downstream[i].is_empty())
    }

    /// Edges as `(upstream id, downstream id)` in topological order of the upstream task.
    pub fn edges(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        (0..self.len()).flat_map(move |i| {
            self.downstream[i]
                .iter()
                .map(move |&d| (self.id(i), self.id(d)))
        })
    }
}

/// Every cycle in `g`, one per strongly connected component, as a closed chain.
fn cycles(g: &DiGraph<String, ()>) -> Vec<Cycle> {
    let mut found = Vec::new();
    for scc in tarjan_scc(g) {
        let self_loop = scc.len() == 1 && g.contains_edge(scc[0], scc[0]);
        if scc.len() < 2 && !self_loop {
            continue;
        }
        // Start at the alphabetically first task so the message is stable, then walk edges
        // inside the component until the walk returns to it.
        let members: std::collections::HashSet<NodeIndex> = scc.iter().copied().collect();
        let Some(&start) = scc.iter().min_by(|a, b| g[**a].cmp(&g[**b])) else {
            continue;
        };
        found.push(Cycle(closed_walk(g, start, &members)));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// A shortest path from `start` back to `start` through `members` (breadth-first).
fn closed_walk(
    g: &DiGraph<String, ()>,
    start: NodeIndex,
    members: &std::collections::HashSet<NodeIndex>,
) -> Vec<String> {
    let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let sorted_neighbors = |n: NodeIndex| {
        let mut v: Vec<NodeIndex> = g.neighbors(n).filter(|m| members.contains(m)).collect();
        v.sort_by(|a, b| g[*a].cmp(&g[*b]));
        v
    };
    while let Some(n) = queue.pop_front() {
        for m in sorted_neighbors(n) {
            if m == start {
                // Walk back from `n` to `start`, then read it forwards and close the loop.
                let mut back = vec![n];
                while let Some(&p) = parent.get(back.last().unwrap_or(&start)) {
                    back.push(p);
                }
                if back.last() != Some(&start) {
                    back.push(start);
                }
                back.reverse();
                back.push(start);
                return back.into_iter().map(|n| g[n].clone()).collect();
            }
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(m) {
                e.insert(n);
                queue.push_back(m);
            }
        }
    }
    vec![g[start].clone(), g[start].clone()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(spec: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        spec.iter()
            .map(|(id, ups)| (id.to_string(), ups.iter().map(|u| u.to_string()).collect()))
            .collect()
    }

    #[test]
    fn indices_are_topological_and_lists_match_edges() {
        let (g, _) = DagGraph::build(&tasks(&[
            ("join", &["left", "right"]),
            ("left", &["root"]),
            ("right", &["root"]),
            ("root", &[]),
        ]))
        .unwrap();
        let root = g.index_of("root").unwrap();
        let join = g.index_of("join").unwrap();
        assert_eq!(root, 0);
        assert_eq!(join, 3);
        assert_eq!(g.upstream(join).len(), 2);
        assert!(g.is_upstream_of(root, join));
        assert!(!g.is_upstream_of(join, root));
        assert!(!g.is_upstream_of(g.index_of("left").unwrap(), g.index_of("right").unwrap()));
        assert_eq!(g.leaves().collect::<Vec<_>>(), vec![join]);
    }

    #[test]
    fn cycles_are_reported_as_closed_chains() {
        let err = DagGraph::build(&tasks(&[
            ("a", &["c"]),
            ("b", &["a"]),
            ("c", &["b"]),
            ("d", &[]),
            ("e", &["e"]),
        ]))
        .unwrap_err();
        let shown: Vec<String> = err.iter().map(Cycle::to_string).collect();
        assert_eq!(shown, vec!["a -> b -> c -> a", "e -> e"]);
    }
}
