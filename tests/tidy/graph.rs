//! Cycles in the module graph: its strongly connected components (Tarjan), each shown as one
//! cycle through its first module.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

type Edges = BTreeMap<String, BTreeMap<String, String>>;

/// One cycle (`a -> b -> a`) per strongly connected component of more than one module.
pub fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    components(edges)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| cycle_through(edges, &c))
        .collect()
}

struct Tarjan<'a> {
    edges: &'a Edges,
    index: BTreeMap<&'a str, usize>,
    low: BTreeMap<&'a str, usize>,
    stack: Vec<&'a str>,
    on_stack: BTreeSet<&'a str>,
    out: Vec<Vec<String>>,
}

impl<'a> Tarjan<'a> {
    fn visit(&mut self, v: &'a str) {
        let n = self.index.len();
        self.index.insert(v, n);
        self.low.insert(v, n);
        self.stack.push(v);
        self.on_stack.insert(v);
        for w in self.edges.get(v).into_iter().flat_map(|m| m.keys()) {
            let w = w.as_str();
            if !self.index.contains_key(w) {
                self.visit(w);
                let lw = self.low[w];
                let lv = self.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if self.on_stack.contains(w) {
                let iw = self.index[w];
                let lv = self.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if self.low[v] == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            component.sort();
            self.out.push(component);
        }
    }
}

fn components(edges: &Edges) -> Vec<Vec<String>> {
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

/// The shortest cycle from the component's first module back to it, staying inside it.
fn cycle_through(edges: &Edges, component: &[String]) -> Vec<String> {
    let start = &component[0];
    let inside: BTreeSet<&String> = component.iter().collect();
    let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in edges.get(v).into_iter().flat_map(|m| m.keys()) {
            if !inside.contains(w) {
                continue;
            }
            if w == start {
                let mut back = vec![v.clone()];
                let mut at = v;
                while at != start {
                    at = came_from[at];
                    back.push(at.clone());
                }
                back.reverse();
                back.push(start.clone());
                return back;
            }
            if !came_from.contains_key(w) && w != start {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    component.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(pairs: &[(&str, &str)]) -> Edges {
        let mut e = Edges::new();
        for (a, b) in pairs {
            e.entry(a.to_string()).or_default().insert(b.to_string(), String::new());
        }
        e
    }

    #[test]
    fn finds_a_three_module_cycle_in_edge_order() {
        let e = edges(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]);
        assert_eq!(cycles(&e), vec![vec!["a", "b", "c", "a"]]);
    }

    #[test]
    fn a_dag_has_none() {
        let e = edges(&[("a", "b"), ("b", "c"), ("a", "c")]);
        assert!(cycles(&e).is_empty());
    }
}
