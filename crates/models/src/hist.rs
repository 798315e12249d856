//! A histogram gradient-boosted tree learner for binary log-loss, in the
//! manner of LightGBM: features binned once into at most 255 quantile bins
//! (bin 0 holds missing values), trees grown leaf-wise to a number of leaves,
//! split gains from per-leaf gradient histograms, the larger child's
//! histogram obtained by subtraction, missing values sent to the side that
//! gains more. Columns are processed on all cores.
//!
//! Monotone constraints (a feature whose effect may only raise, or only
//! lower, the log-odds) follow LightGBM's `monotone_constraints_method =
//! basic`: a split on a constrained feature is only taken when its
//! children's outputs are in the required order, and every leaf below it is
//! bounded by the midpoint of the two outputs (the left subtree below it,
//! the right one above it, or the reverse), so that the whole tree, and the
//! sum of trees, is monotone in the feature whatever the other features
//! are. Split gains are computed from the bounded outputs.
//!
//! It exists because perpetual, the learner of the win and slip models, is
//! two orders of magnitude slower on large matrices (docs/benchmarks.md).

use serde::{Deserialize, Serialize};

/// LightGBM's defaults where they have a counterpart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistParams {
    pub iterations: usize,
    pub learning_rate: f64,
    pub num_leaves: usize,
    pub min_data_in_leaf: usize,
    pub min_sum_hessian: f64,
    pub lambda_l2: f64,
    pub max_bin: usize,
    pub threads: usize,
}

impl Default for HistParams {
    fn default() -> Self {
        HistParams {
            iterations: 100,
            learning_rate: 0.1,
            num_leaves: 31,
            min_data_in_leaf: 20,
            min_sum_hessian: 1e-3,
            lambda_l2: 0.0,
            max_bin: 255,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Node {
    /// `u32::MAX` for a leaf.
    feature: u32,
    threshold: f64,
    default_left: bool,
    left: u32,
    right: u32,
    /// The node's output had it been a leaf (for contributions); the leaf's
    /// output for leaves. Includes the learning rate.
    value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
}

/// A fitted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistGbm {
    pub params: HistParams,
    pub features: usize,
    base: f64,
    trees: Vec<Tree>,
    /// Total split gain per feature.
    gain: Vec<f64>,
    /// Per feature: +1 the log-odds never fall as it rises, -1 never rise,
    /// 0 unconstrained (empty: none constrained).
    #[serde(default)]
    monotone: Vec<i8>,
}

#[derive(Clone, Copy, Default)]
struct Bin {
    g: f64,
    h: f64,
    n: u32,
}

/// Upper edges of bins 1..k of one column (bin 0: missing).
fn bin_edges(col: &[f64], max_bin: usize) -> Vec<f64> {
    let step = (col.len() / 200_000).max(1);
    let mut v: Vec<f64> = col
        .iter()
        .step_by(step)
        .copied()
        .filter(|x| !x.is_nan())
        .collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    let k = max_bin - 1;
    if v.len() <= k {
        return v.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    }
    let mut edges: Vec<f64> = (1..k)
        .map(|i| {
            let a = v[i * v.len() / k - 1];
            let b = v[i * v.len() / k];
            (a + b) / 2.0
        })
        .collect();
    edges.dedup();
    edges
}

#[derive(Clone, Copy)]
struct Split {
    gain: f64,
    feature: usize,
    bin: u8,
    default_left: bool,
    left_g: f64,
    left_h: f64,
}

struct Leaf {
    node: usize,
    rows: Vec<u32>,
    g: f64,
    h: f64,
    /// Bounds on the leaf's output (before the learning rate), from the
    /// monotone splits above it.
    lo: f64,
    hi: f64,
    hist: Vec<Bin>,
    best: Option<Split>,
}

/// Rows per piece of work when gradients are computed, a leaf's rows
/// split or its gradients gathered in parallel; fixed, so the pieces (and
/// any sums over them) do not depend on the number of threads.
const CHUNK: usize = 16_384;
/// From this many rows on, those steps are split into pieces.
const PAR_ROWS: usize = 65_536;

/// Rows walked down a tree together when scoring.
const LANES: usize = 8;
const DEFAULT_LEFT: u32 = 1 << 31;
const LEAF: u32 = 1 << 30;
const INDEX: u32 = LEAF - 1;

/// A node as scoring reads it: 16 bytes.
#[derive(Clone, Copy)]
struct Step {
    /// Threshold, or the value of a leaf.
    t: f64,
    /// Feature (0 for a leaf: read, then ignored).
    f: u32,
    /// Left child (the right one is next to it), or the leaf itself; with
    /// [`DEFAULT_LEFT`] when missing values go left and [`LEAF`] on leaves.
    l: u32,
}

/// A tree's nodes as scoring steps, and its depth (the steps a walk takes).
fn compact(tree: &Tree) -> (Vec<Step>, usize) {
    let steps: Vec<Step> = tree
        .nodes
        .iter()
        .enumerate()
        .map(|(k, nd)| {
            if nd.feature == u32::MAX {
                Step {
                    t: nd.value,
                    f: 0,
                    l: k as u32 | LEAF,
                }
            } else {
                debug_assert_eq!(nd.right, nd.left + 1);
                Step {
                    t: nd.threshold,
                    f: nd.feature,
                    l: nd.left | if nd.default_left { DEFAULT_LEFT } else { 0 },
                }
            }
        })
        .collect();
    assert!(steps.len() < INDEX as usize, "tree too big to score");
    // Depth by a walk from the root (children always follow their parent).
    let mut depth = vec![0usize; steps.len()];
    for (k, nd) in tree.nodes.iter().enumerate() {
        if nd.feature != u32::MAX {
            depth[nd.left as usize] = depth[k] + 1;
            depth[nd.right as usize] = depth[k] + 1;
        }
    }
    let max = depth.into_iter().max().unwrap_or(0);
    (steps, max)
}

/// `f` for every feature, in order; on the pool's threads when `parallel`.
fn per_feature<T: Send>(features: usize, parallel: bool, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    use rayon::prelude::*;
    if parallel {
        (0..features).into_par_iter().map(&f).collect()
    } else {
        (0..features).map(f).collect()
    }
}

impl HistGbm {
    /// Fits on the column-major matrix `x` (`n` rows × `p` columns; NaN is
    /// missing) against 0/1 outcomes `y`.
    pub fn fit(x: &[f64], n: usize, p: usize, y: &[f64], params: HistParams) -> HistGbm {
        Self::fit_monotone(x, n, p, y, params, &[])
    }

    /// As [`HistGbm::fit`], with a monotone constraint per feature in
    /// `monotone` (+1: the model's log-odds never fall as the feature
    /// rises; -1: never rise; 0: free). Missing values are not ordered:
    /// they go to whichever side gains more, as without constraints.
    /// `monotone` is empty (no constraints) or has one entry per feature.
    pub fn fit_monotone(
        x: &[f64],
        n: usize,
        p: usize,
        y: &[f64],
        params: HistParams,
        monotone: &[i8],
    ) -> HistGbm {
        assert!(
            monotone.is_empty() || monotone.len() == p,
            "one monotone constraint per feature"
        );
        match rayon::ThreadPoolBuilder::new()
            .num_threads(params.threads.max(1))
            .build()
        {
            Ok(pool) => pool.install(|| Self::fit_on_pool(x, n, p, y, params, monotone)),
            Err(_) => Self::fit_on_pool(x, n, p, y, params, monotone),
        }
    }

    fn fit_on_pool(
        x: &[f64],
        n: usize,
        p: usize,
        y: &[f64],
        params: HistParams,
        monotone: &[i8],
    ) -> HistGbm {
        assert_eq!(x.len(), n * p);
        let constraint = |j: usize| monotone.get(j).copied().unwrap_or(0).signum();
        let max_bin = params.max_bin.clamp(2, 256);
        let edges: Vec<Vec<f64>> =
            per_feature(p, true, |j| bin_edges(&x[j * n..(j + 1) * n], max_bin));
        let bins: Vec<Vec<u8>> = per_feature(p, true, |j| {
            let e = &edges[j];
            x[j * n..(j + 1) * n]
                .iter()
                .map(|&v| {
                    if v.is_nan() {
                        0
                    } else {
                        (1 + e.partition_point(|&b| b < v)) as u8
                    }
                })
                .collect()
        });
        let nbins: Vec<usize> = edges.iter().map(|e| e.len() + 2).collect();
        let offsets: Vec<usize> = nbins
            .iter()
            .scan(0, |acc, &k| {
                let o = *acc;
                *acc += k;
                Some(o)
            })
            .collect();
        let total_bins: usize = nbins.iter().sum();

        let mean = (y.iter().sum::<f64>() / n as f64).clamp(1e-6, 1.0 - 1e-6);
        let base = (mean / (1.0 - mean)).ln();
        let mut score = vec![base; n];
        // Gradient and hessian side by side: one cache line per row.
        let mut gh = vec![[0.0f64; 2]; n];
        let mut trees = Vec::with_capacity(params.iterations);
        let mut gain_total = vec![0.0; p];
        let lambda = params.lambda_l2;
        // A leaf's output before the learning rate, within its bounds.
        let output = |g: f64, h: f64, lo: f64, hi: f64| (-g / (h + lambda)).clamp(lo, hi);
        // The loss reduction of a leaf giving output `w` (LightGBM's
        // GetLeafGainGivenOutput); g²/(h+λ) at the unbounded optimum.
        let gain_of = |g: f64, h: f64, w: f64| -(2.0 * g * w + (h + lambda) * w * w);

        // Threads only pay off on enough rows.
        let par = |rows: usize| rows * p >= 20_000;
        let build_hist = |rows: &[u32], gh: &[[f64; 2]]| -> Vec<Bin> {
            // The leaf's gradients gathered once, in row order, for every column.
            // (single precision halves the memory traffic; sums stay in f64).
            let gather = |rows: &[u32]| -> Vec<[f32; 2]> {
                rows.iter()
                    .map(|&r| {
                        let [g, h] = gh[r as usize];
                        [g as f32, h as f32]
                    })
                    .collect()
            };
            let ordered: Vec<[f32; 2]> = if rows.len() >= PAR_ROWS {
                use rayon::prelude::*;
                rows.par_chunks(CHUNK).flat_map_iter(gather).collect()
            } else {
                gather(rows)
            };
            // The root's rows are all rows in order: no indirection.
            let all = rows.len() == n;
            let parts = per_feature(p, par(rows.len()), |j| {
                let mut hist = vec![Bin::default(); nbins[j]];
                let b = &bins[j];
                let mut add = |bin: u8, [gr, hr]: [f32; 2]| {
                    let e = &mut hist[bin as usize];
                    e.g += f64::from(gr);
                    e.h += f64::from(hr);
                    e.n += 1;
                };
                if all {
                    for (&bin, &gh) in b.iter().zip(&ordered) {
                        add(bin, gh);
                    }
                } else {
                    for (&r, &gh) in rows.iter().zip(&ordered) {
                        add(b[r as usize], gh);
                    }
                }
                hist
            });
            let mut out = Vec::with_capacity(total_bins);
            for part in parts {
                out.extend(part);
            }
            out
        };
        let find_split =
            |hist: &[Bin], g_sum: f64, h_sum: f64, n_sum: u32, lo: f64, hi: f64| -> Option<Split> {
                let bounded = lo > f64::NEG_INFINITY || hi < f64::INFINITY;
                let parent = if bounded {
                    gain_of(g_sum, h_sum, output(g_sum, h_sum, lo, hi))
                } else {
                    g_sum * g_sum / (h_sum + lambda)
                };
                let cands = per_feature(p, total_bins >= 1_000, |j| {
                    let dir = constraint(j);
                    let hb = &hist[offsets[j]..offsets[j] + nbins[j]];
                    let miss = hb[0];
                    let mut best: Option<Split> = None;
                    let (mut gl, mut hl, mut nl) = (0.0, 0.0, 0u32);
                    for b in 1..nbins[j] - 1 {
                        gl += hb[b].g;
                        hl += hb[b].h;
                        nl += hb[b].n;
                        for default_left in [false, true] {
                            let (g_l, h_l, n_l) = if default_left {
                                (gl + miss.g, hl + miss.h, nl + miss.n)
                            } else {
                                (gl, hl, nl)
                            };
                            let (g_r, h_r, n_r) = (g_sum - g_l, h_sum - h_l, n_sum - n_l);
                            if (n_l as usize) < params.min_data_in_leaf
                                || (n_r as usize) < params.min_data_in_leaf
                                || h_l < params.min_sum_hessian
                                || h_r < params.min_sum_hessian
                            {
                                continue;
                            }
                            let gain = if bounded || dir != 0 {
                                let (w_l, w_r) =
                                    (output(g_l, h_l, lo, hi), output(g_r, h_r, lo, hi));
                                // Higher values go right.
                                if (dir > 0 && w_l > w_r) || (dir < 0 && w_l < w_r) {
                                    continue;
                                }
                                gain_of(g_l, h_l, w_l) + gain_of(g_r, h_r, w_r) - parent
                            } else {
                                g_l * g_l / (h_l + lambda) + g_r * g_r / (h_r + lambda) - parent
                            };
                            if gain > best.map_or(1e-12, |s| s.gain) {
                                best = Some(Split {
                                    gain,
                                    feature: j,
                                    bin: b as u8,
                                    default_left,
                                    left_g: g_l,
                                    left_h: h_l,
                                });
                            }
                            if miss.n == 0 {
                                break;
                            }
                        }
                    }
                    best
                });
                cands
                    .into_iter()
                    .flatten()
                    .max_by(|a, b| a.gain.total_cmp(&b.gain).then(b.feature.cmp(&a.feature)))
            };

        for _ in 0..params.iterations {
            // Gradients in fixed chunks, their sums added in chunk order: the
            // same model whatever the number of threads.
            let sums: Vec<(f64, f64)> = {
                use rayon::prelude::*;
                gh.par_chunks_mut(CHUNK)
                    .zip(score.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)))
                    .map(|(gh, (score, y))| {
                        let (mut gs, mut hs) = (0.0, 0.0);
                        for ((o, &s), &yr) in gh.iter_mut().zip(score).zip(y) {
                            let pr = 1.0 / (1.0 + (-s).exp());
                            let (gr, hr) = (pr - yr, (pr * (1.0 - pr)).max(1e-16));
                            *o = [gr, hr];
                            gs += gr;
                            hs += hr;
                        }
                        (gs, hs)
                    })
                    .collect()
            };
            let (mut gs, mut hs) = (0.0, 0.0);
            for (g, h) in sums {
                gs += g;
                hs += h;
            }
            let rows: Vec<u32> = (0..n as u32).collect();
            let hist = build_hist(&rows, &gh);
            let (inf, ninf) = (f64::INFINITY, f64::NEG_INFINITY);
            let best = find_split(&hist, gs, hs, n as u32, ninf, inf);
            let mut nodes = vec![Node {
                feature: u32::MAX,
                threshold: 0.0,
                default_left: false,
                left: 0,
                right: 0,
                value: output(gs, hs, ninf, inf) * params.learning_rate,
            }];
            let mut leaves = vec![Leaf {
                node: 0,
                rows,
                g: gs,
                h: hs,
                lo: ninf,
                hi: inf,
                hist,
                best,
            }];
            while leaves.len() < params.num_leaves {
                let Some((li, _)) = leaves
                    .iter()
                    .enumerate()
                    .filter_map(|(i, l)| l.best.map(|s| (i, s.gain)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                else {
                    break;
                };
                let leaf = leaves.swap_remove(li);
                let s = leaf.best.expect("chosen");
                gain_total[s.feature] += s.gain;
                let b = &bins[s.feature];
                let split = |rows: &[u32]| -> (Vec<u32>, Vec<u32>) {
                    let (mut l, mut r) = (Vec::new(), Vec::new());
                    for &row in rows {
                        let v = b[row as usize];
                        let left = if v == 0 { s.default_left } else { v <= s.bin };
                        if left { l.push(row) } else { r.push(row) }
                    }
                    (l, r)
                };
                let (lrows, rrows) = if leaf.rows.len() >= PAR_ROWS {
                    // In chunks on the pool, joined in order: the same
                    // children as one pass.
                    use rayon::prelude::*;
                    let parts: Vec<(Vec<u32>, Vec<u32>)> =
                        leaf.rows.par_chunks(CHUNK).map(split).collect();
                    let nl: usize = parts.iter().map(|p| p.0.len()).sum();
                    let mut l = Vec::with_capacity(nl);
                    let mut r = Vec::with_capacity(leaf.rows.len() - nl);
                    for (pl, pr) in parts {
                        l.extend(pl);
                        r.extend(pr);
                    }
                    (l, r)
                } else {
                    split(&leaf.rows)
                };
                let (rg, rh) = (leaf.g - s.left_g, leaf.h - s.left_h);
                // The smaller child's histogram is built; the other is the difference.
                let small_left = lrows.len() <= rrows.len();
                let small = build_hist(if small_left { &lrows } else { &rrows }, &gh);
                let large: Vec<Bin> = leaf
                    .hist
                    .iter()
                    .zip(&small)
                    .map(|(a, b)| Bin {
                        g: a.g - b.g,
                        h: a.h - b.h,
                        n: a.n - b.n,
                    })
                    .collect();
                let (lhist, rhist) = if small_left {
                    (small, large)
                } else {
                    (large, small)
                };
                let li_node = nodes.len();
                let threshold = edges[s.feature]
                    .get(s.bin as usize - 1)
                    .copied()
                    .unwrap_or(f64::INFINITY);
                {
                    let parent = &mut nodes[leaf.node];
                    parent.feature = s.feature as u32;
                    parent.threshold = threshold;
                    parent.default_left = s.default_left;
                    parent.left = li_node as u32;
                    parent.right = li_node as u32 + 1;
                }
                let (w_l, w_r) = (
                    output(s.left_g, s.left_h, leaf.lo, leaf.hi),
                    output(rg, rh, leaf.lo, leaf.hi),
                );
                for w in [w_l, w_r] {
                    nodes.push(Node {
                        feature: u32::MAX,
                        threshold: 0.0,
                        default_left: false,
                        left: 0,
                        right: 0,
                        value: w * params.learning_rate,
                    });
                }
                // Below a monotone split, each side stays on its side of
                // the midpoint of the two outputs.
                let mid = (w_l + w_r) / 2.0;
                let ((l_lo, l_hi), (r_lo, r_hi)) = match constraint(s.feature) {
                    1 => ((leaf.lo, mid), (mid, leaf.hi)),
                    -1 => ((mid, leaf.hi), (leaf.lo, mid)),
                    _ => ((leaf.lo, leaf.hi), (leaf.lo, leaf.hi)),
                };
                let lbest = find_split(&lhist, s.left_g, s.left_h, lrows.len() as u32, l_lo, l_hi);
                let rbest = find_split(&rhist, rg, rh, rrows.len() as u32, r_lo, r_hi);
                leaves.push(Leaf {
                    node: li_node,
                    rows: lrows,
                    g: s.left_g,
                    h: s.left_h,
                    lo: l_lo,
                    hi: l_hi,
                    hist: lhist,
                    best: lbest,
                });
                leaves.push(Leaf {
                    node: li_node + 1,
                    rows: rrows,
                    g: rg,
                    h: rh,
                    lo: r_lo,
                    hi: r_hi,
                    hist: rhist,
                    best: rbest,
                });
            }
            for l in &leaves {
                let v = nodes[l.node].value;
                for &r in &l.rows {
                    score[r as usize] += v;
                }
            }
            trees.push(Tree { nodes });
        }
        HistGbm {
            params,
            features: p,
            base,
            trees,
            gain: gain_total,
            monotone: if monotone.iter().any(|&m| m != 0) {
                monotone.iter().map(|m| m.signum()).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// The monotone constraint of each feature (+1, -1, 0), or an empty
    /// slice when none was constrained.
    pub fn monotone(&self) -> &[i8] {
        &self.monotone
    }

    /// Log-odds for the column-major matrix `x` of `n` rows.
    pub fn logits(&self, x: &[f64], n: usize) -> Vec<f64> {
        let cols: Vec<&[f64]> = (0..self.features).map(|f| &x[f * n..(f + 1) * n]).collect();
        self.logits_of_columns(&cols, n)
    }

    /// Log-odds for `n` rows given as one slice per feature (non-finite
    /// values are missing).
    ///
    /// Scoring is laid out for the processor rather than the tree: rows go
    /// in blocks, copied row-major first (in the column-major input a row's
    /// features lie a column apart, which defeats the caches); each tree is
    /// walked for [`LANES`] rows at once, without branches, for as many
    /// steps as the tree is deep (a leaf points to itself). The walk is a
    /// chain of dependent loads and compares; interleaving independent rows
    /// hides its latency, and no branch depends on the data, so none is
    /// mispredicted.
    pub fn logits_of_columns(&self, cols: &[&[f64]], n: usize) -> Vec<f64> {
        assert_eq!(cols.len(), self.features, "one column per feature");
        let trees: Vec<(Vec<Step>, usize)> = self.trees.iter().map(compact).collect();
        let p = self.features.max(1);
        let mut out = vec![self.base; n];
        let score = |first: usize, block: &mut [f64]| {
            let m = block.len();
            let mut rows = vec![0.0; m * p];
            for (f, col) in cols.iter().enumerate() {
                for (i, &v) in col[first..first + m].iter().enumerate() {
                    rows[i * p + f] = if v.is_finite() { v } else { f64::NAN };
                }
            }
            let mut i = 0;
            while i < m {
                let lanes = LANES.min(m - i);
                let mut sum = [0.0f64; LANES];
                for (steps, depth) in &trees {
                    let mut at = [0usize; LANES];
                    for _ in 0..*depth {
                        let mut leaves = LEAF;
                        for (j, k) in at.iter_mut().enumerate().take(lanes) {
                            let nd = steps[*k];
                            let v = rows[(i + j) * p + nd.f as usize];
                            let right = if v.is_nan() {
                                nd.l & DEFAULT_LEFT == 0
                            } else {
                                v > nd.t
                            };
                            *k = (nd.l & INDEX) as usize + usize::from(right & (nd.l & LEAF == 0));
                            leaves &= nd.l;
                        }
                        // Every lane was already on a leaf: the rest of the
                        // depth (a deeper branch elsewhere) is not needed.
                        if leaves != 0 {
                            break;
                        }
                    }
                    for j in 0..lanes {
                        sum[j] += steps[at[j]].t;
                    }
                }
                for j in 0..lanes {
                    block[i + j] += sum[j];
                }
                i += lanes;
            }
        };
        use rayon::prelude::*;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.params.threads.max(1))
            .build();
        const BLOCK: usize = 256;
        let run = |out: &mut [f64]| {
            out.par_chunks_mut(BLOCK)
                .enumerate()
                .for_each(|(b, block)| score(b * BLOCK, block))
        };
        match pool {
            Ok(pool) => pool.install(|| run(&mut out)),
            Err(_) => run(&mut out),
        }
        out
    }

    /// Per row, each feature's contribution to the log-odds (the change of
    /// the node value at each split on the row's path, Saabas-style); they
    /// add up to the log-odds minus [`HistGbm::bias`].
    pub fn contributions(&self, x: &[f64], n: usize) -> Vec<Vec<f64>> {
        (0..n)
            .map(|r| {
                let mut c = vec![0.0; self.features];
                for t in &self.trees {
                    let mut i = 0;
                    // The root's value is the tree's share of the base.
                    loop {
                        let nd = &t.nodes[i];
                        if nd.feature == u32::MAX {
                            break;
                        }
                        let v = x[nd.feature as usize * n + r];
                        let left = if v.is_nan() {
                            nd.default_left
                        } else {
                            v <= nd.threshold
                        };
                        let next = if left { nd.left } else { nd.right } as usize;
                        c[nd.feature as usize] += t.nodes[next].value - nd.value;
                        i = next;
                    }
                }
                c
            })
            .collect()
    }

    /// Per row, each feature's baseline Shapley value against one reference
    /// row (Sundararajan and Najmi, "The many Shapley values for model
    /// explanation", 2020; computed exactly per tree as in Lundberg et
    /// al.'s interventional TreeSHAP with a single background row): the
    /// average, over every order of switching features from the
    /// reference's values to the row's, of the change of the log-odds
    /// when this feature is switched. Shape: `n` rows × features, in
    /// log-odds; each row's values add up to its log-odds minus the
    /// reference's. A feature whose value equals the reference's gets 0.
    /// For a feature fitted with a monotone constraint the sign is
    /// guaranteed: with +1, positive when the row's value is above the
    /// reference's and negative below (the reverse with -1), because every
    /// switch of that feature moves the log-odds that way.
    ///
    /// `x` is column-major (`n` rows × features, NaN missing); `reference`
    /// has one value per feature (NaN: missing).
    pub fn shapley_against(&self, x: &[f64], n: usize, reference: &[f64]) -> Vec<Vec<f64>> {
        assert_eq!(
            reference.len(),
            self.features,
            "one reference value per feature"
        );
        let goes_left = |nd: &Node, v: f64| {
            if v.is_nan() {
                nd.default_left
            } else {
                v <= nd.threshold
            }
        };
        // Shapley weights: factorials up to the deepest path.
        let fact: Vec<f64> = (0..64)
            .scan(1.0, |acc: &mut f64, k: i32| {
                let v = *acc;
                *acc *= f64::from(k + 1);
                Some(v)
            })
            .collect();
        /// Walks the leaves a mix of the row and the reference can reach.
        /// `path` holds each feature whose split separated them, and whose
        /// side the walk took: `true` the row's, `false` the reference's.
        #[allow(clippy::too_many_arguments)]
        fn walk(
            t: &Tree,
            k: usize,
            row: &dyn Fn(u32) -> f64,
            reference: &[f64],
            path: &mut Vec<(u32, bool)>,
            fact: &[f64],
            goes_left: &dyn Fn(&Node, f64) -> bool,
            out: &mut [f64],
        ) {
            let nd = &t.nodes[k];
            if nd.feature == u32::MAX {
                let u = path.iter().filter(|p| p.1).count();
                let v = path.len() - u;
                if u + v == 0 || u + v >= fact.len() {
                    return;
                }
                for &(f, own) in path.iter() {
                    // The leaf counts in the game when every `own` feature is
                    // switched and no other one is.
                    out[f as usize] += if own {
                        nd.value * fact[u - 1] * fact[v] / fact[u + v]
                    } else {
                        -nd.value * fact[u] * fact[v - 1] / fact[u + v]
                    };
                }
                return;
            }
            let side = |left: bool| if left { nd.left } else { nd.right } as usize;
            let xl = goes_left(nd, row(nd.feature));
            let rl = goes_left(nd, reference[nd.feature as usize]);
            if xl == rl {
                return walk(t, side(xl), row, reference, path, fact, goes_left, out);
            }
            match path.iter().find(|p| p.0 == nd.feature) {
                Some(&(_, true)) => walk(t, side(xl), row, reference, path, fact, goes_left, out),
                Some(&(_, false)) => walk(t, side(rl), row, reference, path, fact, goes_left, out),
                None => {
                    for (own, left) in [(true, xl), (false, rl)] {
                        path.push((nd.feature, own));
                        walk(t, side(left), row, reference, path, fact, goes_left, out);
                        path.pop();
                    }
                }
            }
        }
        (0..n)
            .map(|r| {
                let mut c = vec![0.0; self.features];
                let row = |f: u32| x[f as usize * n + r];
                let mut path = Vec::new();
                for t in &self.trees {
                    walk(t, 0, &row, reference, &mut path, &fact, &goes_left, &mut c);
                }
                c
            })
            .collect()
    }

    /// The log-odds of a row before any split: the base score plus every
    /// tree's root value.
    pub fn bias(&self) -> f64 {
        self.base + self.trees.iter().map(|t| t.nodes[0].value).sum::<f64>()
    }

    /// Total split gain per feature.
    pub fn gain(&self) -> &[f64] {
        &self.gain
    }

    pub fn trees(&self) -> usize {
        self.trees.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Column-major data: y depends on x0 (and on x1 being missing).
    fn data(n: usize) -> (Vec<f64>, Vec<f64>) {
        let mut s: u64 = 99;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut x = vec![0.0; 3 * n];
        let mut y = vec![0.0; n];
        for r in 0..n {
            x[r] = rnd();
            x[n + r] = if rnd() < 0.3 { f64::NAN } else { rnd() };
            x[2 * n + r] = rnd();
            let z = 6.0 * (x[r] - 0.5) + if x[n + r].is_nan() { 1.5 } else { 0.0 };
            y[r] = f64::from(rnd() < 1.0 / (1.0 + (-z).exp()));
        }
        (x, y)
    }

    #[test]
    fn big_leaves_split_in_pieces_give_the_same_model_as_one_thread() {
        // Enough rows for the chunked gradients, gathers and partitions.
        let n = 3 * PAR_ROWS / 2;
        let (x, y) = data(n);
        let fit = |threads| {
            HistGbm::fit(
                &x,
                n,
                3,
                &y,
                HistParams {
                    threads,
                    iterations: 5,
                    ..HistParams::default()
                },
            )
        };
        let (one, two) = (fit(1), fit(2));
        assert_eq!(one.trees, two.trees);
        assert_eq!(one.gain, two.gain);
        assert!(crate::metrics::roc_auc(&two.logits(&x, n), &y) > 0.85);
    }

    #[test]
    fn learns_splits_missing_values_and_explains_exactly() {
        let n = 4000;
        let (x, y) = data(n);
        let m = HistGbm::fit(&x, n, 3, &y, HistParams::default());
        assert_eq!(m.trees(), 100);
        let z = m.logits(&x, n);
        let auc = crate::metrics::roc_auc(&z, &y);
        assert!(auc > 0.85, "AUC {auc}");
        // x0 carries most of the gain, the noise column least.
        assert!(
            m.gain()[0] > m.gain()[1] && m.gain()[1] > m.gain()[2],
            "{:?}",
            m.gain()
        );
        // Contributions add up to the log-odds, row by row.
        let c = m.contributions(&x, n);
        for r in 0..n {
            let sum: f64 = c[r].iter().sum();
            assert!((m.bias() + sum - z[r]).abs() < 1e-9);
        }
        // A missing x1 pushes up, as in the data.
        let (mut miss, mut seen) = (Vec::new(), Vec::new());
        for r in 0..n {
            if x[n + r].is_nan() {
                miss.push(c[r][1])
            } else {
                seen.push(c[r][1])
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            mean(&miss) > mean(&seen) + 0.5,
            "{} {}",
            mean(&miss),
            mean(&seen)
        );
        // One thread or many: the same model.
        let one = HistGbm::fit(
            &x,
            n,
            3,
            &y,
            HistParams {
                threads: 1,
                ..HistParams::default()
            },
        );
        assert_eq!(one.logits(&x, n), z);
    }

    /// x0's true effect rises then falls (a hump), x2's interacts with x0;
    /// constrained to rise with x0 and fall with x2, the model must never
    /// go against either, for any row, at any value.
    #[test]
    fn monotone_constraints_hold_everywhere_and_shapley_values_follow_them() {
        let n = 6000;
        let (mut x, _) = data(n);
        let mut s: u64 = 7;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut y = vec![0.0; n];
        for r in 0..n {
            x[2 * n + r] = rnd();
            let (a, c) = (x[r], x[2 * n + r]);
            let z = 4.0 * a - 5.0 * (a - 0.7).max(0.0) * 4.0 + 3.0 * (c - 0.5) * (a - 0.5);
            y[r] = f64::from(rnd() < 1.0 / (1.0 + (-z).exp()));
        }
        let params = HistParams {
            iterations: 60,
            ..HistParams::default()
        };
        let free = HistGbm::fit(&x, n, 3, &y, params);
        let tied = HistGbm::fit_monotone(&x, n, 3, &y, params, &[1, 0, -1]);
        assert_eq!(tied.monotone(), &[1, 0, -1]);
        assert!(free.monotone().is_empty());
        // A grid of values for one feature, the other features of 200 rows.
        let sweep = |m: &HistGbm, f: usize| -> usize {
            let rows = 200;
            let grid: Vec<f64> = (0..=40).map(|k| f64::from(k) / 40.0).collect();
            let mut against = 0;
            for r in 0..rows {
                let mut xs = vec![0.0; 3 * grid.len()];
                for (i, &g) in grid.iter().enumerate() {
                    for j in 0..3 {
                        xs[j * grid.len() + i] = if j == f { g } else { x[j * n + r] };
                    }
                }
                let z = m.logits(&xs, grid.len());
                let dir = if f == 0 { 1.0 } else { -1.0 };
                against += z
                    .windows(2)
                    .filter(|w| dir * (w[1] - w[0]) < -1e-12)
                    .count();
            }
            against
        };
        // Unconstrained, the trees follow the hump down; constrained, never.
        assert!(sweep(&free, 0) > 100, "{}", sweep(&free, 0));
        assert_eq!(sweep(&tied, 0), 0);
        assert_eq!(sweep(&tied, 2), 0);
        // Where the truth is monotone (x0 in `data`), the constraint costs
        // next to nothing on rows the model did not see.
        let (xa, ya) = data(2 * n);
        let half = |lo: usize| -> (Vec<f64>, Vec<f64>) {
            let x = (0..3)
                .flat_map(|j| xa[j * 2 * n + lo..j * 2 * n + lo + n].to_vec())
                .collect();
            (x, ya[lo..lo + n].to_vec())
        };
        let ((x_tr, y_tr), (x_te, y_te)) = (half(0), half(n));
        let auc = |m: &HistGbm| crate::metrics::roc_auc(&m.logits(&x_te, n), &y_te);
        let (a_free, a_tied) = (
            auc(&HistGbm::fit(&x_tr, n, 3, &y_tr, params)),
            auc(&HistGbm::fit_monotone(
                &x_tr,
                n,
                3,
                &y_tr,
                params,
                &[1, 0, 0],
            )),
        );
        assert!(a_tied > a_free - 0.005, "{a_tied} {a_free}");

        // Baseline Shapley values against a reference row add up to the
        // difference of log-odds, and follow the constraints' signs.
        let reference = [0.5, f64::NAN, 0.5];
        let z = tied.logits(&x, n);
        let z_ref = tied.logits(&reference, 1)[0];
        let c = tied.shapley_against(&x, n, &reference);
        for r in 0..n {
            let sum: f64 = c[r].iter().sum();
            assert!(
                (z_ref + sum - z[r]).abs() < 1e-9,
                "row {r}: {sum} vs {}",
                z[r] - z_ref
            );
            let (a, b) = (x[r], x[2 * n + r]);
            assert!(
                c[r][0] * (a - 0.5).signum() >= -1e-12,
                "row {r}: x0 {a} gets {}",
                c[r][0]
            );
            assert!(
                c[r][2] * (0.5 - b).signum() >= -1e-12,
                "row {r}: x2 {b} gets {}",
                c[r][2]
            );
            if x[n + r].is_nan() {
                assert_eq!(c[r][1], 0.0, "same value as the reference: no share");
            }
        }
        // With one feature differing, its value is the whole difference.
        let one = [0.9, f64::NAN, 0.5];
        let c1 = tied.shapley_against(&one, 1, &reference);
        let d = tied.logits(&one, 1)[0] - z_ref;
        assert!((c1[0][0] - d).abs() < 1e-12 && c1[0][2] == 0.0);
    }
}
