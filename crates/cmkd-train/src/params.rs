//! Named, ordered views of a model's variables.
//!
//! `VarMap::all_vars()` iterates a `HashMap`, so its order changes between runs; anything that
//! depends on order (optimizer state, clipping sums, checkpoints) goes through [`sorted_vars`].

use candle_core::Var;
use candle_nn::VarMap;

/// The variables of `map` with their names, sorted by name.
pub fn sorted_vars(map: &VarMap) -> Vec<(String, Var)> {
    let data = map.data().lock().expect("VarMap lock poisoned");
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The variables of `map` whose names do not start with any of `frozen_prefixes`, sorted by name.
pub fn trainable_vars(map: &VarMap, frozen_prefixes: &[&str]) -> Vec<(String, Var)> {
    sorted_vars(map)
        .into_iter()
        .filter(|(n, _)| !frozen_prefixes.iter().any(|p| n.starts_with(p)))
        .collect()
}

/// Total number of scalar parameters in `vars`.
pub fn count_params(vars: &[(String, Var)]) -> usize {
    vars.iter().map(|(_, v)| v.elem_count()).sum()
}

/// PyTorch's usual weight-decay rule (as in DALLE2-pytorch's optimizer): decay matrices and
/// kernels, never biases, norm gains or other vectors.
pub fn decays_by_rank(var: &Var) -> bool {
    var.rank() >= 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn sorted_and_filtered() {
        let map = VarMap::new();
        let vb = crate::seeded_var_builder(&map, 0, DType::F32, &Device::Cpu);
        candle_nn::linear(3, 2, vb.pp("z")).unwrap();
        candle_nn::linear(2, 5, vb.pp("a")).unwrap();
        let names: Vec<_> = sorted_vars(&map).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a.bias", "a.weight", "z.bias", "z.weight"]);
        let t = trainable_vars(&map, &["z."]);
        assert_eq!(count_params(&t), 2 * 5 + 5);
        assert!(decays_by_rank(&t[1].1) && !decays_by_rank(&t[0].1));
    }
}
