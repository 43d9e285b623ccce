//! The commit graph of a bisect range, with ancestor sets as bitsets, and git bisect's choice of
//! the commit that best halves what is left.

use serde::Serialize;

/// A commit's state as far as the bisect is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Old,
    New,
    Skip,
    /// Tested, but not enough yet.
    Pending,
}

#[derive(Debug, Clone)]
pub struct Graph {
    /// Commit ids (hex), parents before children; the old ends come last.
    pub ids: Vec<String>,
    pub subjects: Vec<String>,
    /// Indices of each commit's parents that are in the graph.
    pub parents: Vec<Vec<usize>>,
    /// Commits that touch the bisect's paths (all of them when no paths are given).
    pub interesting: Vec<bool>,
    new_end: usize,
    old_ends: Vec<usize>,
    /// `anc[i]`: the commits reachable from `i`, itself included.
    anc: Vec<Vec<u64>>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("{0}")]
    Range(String),
}

fn has(set: &[u64], i: usize) -> bool {
    set[i / 64] & (1 << (i % 64)) != 0
}

/// A commit id's first 12 characters; a package name (`debian:6.1.0-50`) whole.
pub fn short(id: &str) -> String {
    match id.starts_with(crate::archive::PREFIX) {
        true => id.to_string(),
        false => id.chars().take(12).collect(),
    }
}

impl Graph {
    /// A graph from explicit parent lists (parents before children), for the algorithm alone.
    pub fn from_parents(ids: Vec<String>, parents: Vec<Vec<usize>>, new_end: usize, old_ends: Vec<usize>) -> Self {
        let n = ids.len();
        let words = n.div_ceil(64);
        let mut anc = vec![vec![0u64; words]; n];
        for i in 0..n {
            let mut set = vec![0u64; words];
            set[i / 64] |= 1 << (i % 64);
            for &p in &parents[i] {
                debug_assert!(p < i, "parents come first");
                for (w, a) in set.iter_mut().zip(&anc[p]) {
                    *w |= a;
                }
            }
            anc[i] = set;
        }
        Graph {
            subjects: vec![String::new(); n],
            interesting: vec![true; n],
            ids,
            parents,
            new_end,
            old_ends,
            anc,
        }
    }

    /// The range `old..new` of `repo` (`new` and its ancestors that no old end reaches), plus
    /// the old ends. With `paths`, only commits touching them are candidates.
    pub fn from_repo(
        repo: &git2::Repository,
        new: git2::Oid,
        olds: &[git2::Oid],
        paths: &[String],
    ) -> Result<Self, Error> {
        let mut walk = repo.revwalk()?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
        walk.push(new)?;
        for o in olds {
            if *o == new {
                return Err(Error::Range("the good and bad revisions are the same commit".into()));
            }
            walk.hide(*o)?;
        }
        let mut order: Vec<git2::Oid> = walk.collect::<Result<_, _>>()?;
        if order.is_empty() {
            return Err(Error::Range(
                "the bad revision is an ancestor of the good one: nothing to bisect (use --fix to find a fix)".into(),
            ));
        }
        let new_end = order.len() - 1;
        for o in olds {
            if !repo.graph_descendant_of(new, *o)? {
                return Err(Error::Range(format!(
                    "{} is not an ancestor of {}",
                    &o.to_string()[..12],
                    &new.to_string()[..12]
                )));
            }
        }
        let old_start = order.len();
        order.extend_from_slice(olds);
        let index: std::collections::HashMap<git2::Oid, usize> =
            order.iter().enumerate().map(|(i, o)| (*o, i)).collect();
        let mut parents = Vec::new();
        let mut subjects = Vec::new();
        let mut interesting = Vec::new();
        for (i, oid) in order.iter().enumerate() {
            let c = repo.find_commit(*oid)?;
            subjects.push(c.summary().unwrap_or("").to_string());
            // Old ends are leaves: their history is outside the range.
            parents.push(if i >= old_start {
                Vec::new()
            } else {
                c.parent_ids()
                    .filter_map(|p| index.get(&p).copied())
                    .filter(|&p| p < i || p >= old_start)
                    .collect()
            });
            interesting.push(i >= old_start || paths.is_empty() || touches(repo, &c, paths)?);
        }
        // Parents that are old ends sit after their children in `order`; move the ends to the
        // front so that parents always come first.
        let n = order.len();
        let perm: Vec<usize> = (old_start..n).chain(0..old_start).collect();
        let mut pos = vec![0; n];
        for (new_i, &old_i) in perm.iter().enumerate() {
            pos[old_i] = new_i;
        }
        let ids: Vec<String> = perm.iter().map(|&i| order[i].to_string()).collect();
        let parents: Vec<Vec<usize>> = perm
            .iter()
            .map(|&i| parents[i].iter().map(|&p| pos[p]).collect())
            .collect();
        let mut g = Graph::from_parents(ids, parents, pos[new_end], (old_start..n).map(|i| pos[i]).collect());
        g.subjects = perm.iter().map(|&i| subjects[i].clone()).collect();
        g.interesting = perm.iter().map(|&i| interesting[i]).collect();
        Ok(g)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn new_end(&self) -> usize {
        self.new_end
    }

    pub fn old_ends(&self) -> &[usize] {
        &self.old_ends
    }

    pub fn short(&self, i: usize) -> String {
        short(&self.ids[i])
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.ids.iter().position(|x| x == id)
    }

    /// The initial range: every commit but the old ends.
    pub fn range(&self) -> Vec<usize> {
        (0..self.len()).filter(|i| !self.old_ends.contains(i)).collect()
    }

    /// Is `a` reachable from `b` (or equal)?
    pub fn is_ancestor(&self, a: usize, b: usize) -> bool {
        has(&self.anc[b], a)
    }

    /// The commits still in question (reachable from every new commit, and from no old one)
    /// and the candidate that best halves them: the most `min(w, n - w)`, where `w` is how
    /// many of them the candidate reaches. Skipped, decided and uninteresting commits are not
    /// candidates.
    pub fn search(&self, states: &[State]) -> (Vec<usize>, Option<usize>) {
        let news: Vec<usize> = (0..self.len()).filter(|&i| states[i] == State::New).collect();
        let olds: Vec<usize> = (0..self.len()).filter(|&i| states[i] == State::Old).collect();
        let range: Vec<usize> = (0..self.len())
            .filter(|&c| {
                !self.old_ends.contains(&c)
                    && news.iter().all(|&n| self.is_ancestor(c, n))
                    && !olds.iter().any(|&o| self.is_ancestor(c, o))
            })
            .collect();
        let n = range.len();
        let mut best: Option<(usize, usize)> = None;
        for &c in &range {
            if states[c] != State::Pending || !self.interesting[c] {
                continue;
            }
            let w = range.iter().filter(|&&r| self.is_ancestor(r, c)).count();
            let score = w.min(n - w);
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, c));
            }
        }
        (range, best.map(|(_, c)| c))
    }

    /// The lowest new commit in `range` (the one reaching the fewest others).
    pub fn bottom(&self, range: &[usize], states: &[State]) -> usize {
        range
            .iter()
            .copied()
            .filter(|&c| states[c] == State::New)
            .min_by_key(|&c| range.iter().filter(|&&r| self.is_ancestor(r, c)).count())
            .unwrap_or(self.new_end)
    }
}

/// Does `c` change any of `paths` (a path or a directory prefix) against its first parent?
fn touches(repo: &git2::Repository, c: &git2::Commit, paths: &[String]) -> Result<bool, git2::Error> {
    let tree = c.tree()?;
    let parent = match c.parent(0) {
        Ok(p) => Some(p.tree()?),
        Err(_) => None,
    };
    let mut opts = git2::DiffOptions::new();
    for p in paths {
        opts.pathspec(p);
    }
    let diff = repo.diff_tree_to_tree(parent.as_ref(), Some(&tree), Some(&mut opts))?;
    Ok(diff.deltas().len() > 0)
}
