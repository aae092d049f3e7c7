//! Named, ordered views of a model's variables.
//!
//! `VarMap::all_vars()` iterates a `HashMap`, so its order changes between runs; anything that
//! depends on order (optimizer state, clipping sums, checkpoints) goes through [`sorted_vars`].
//! [`frozen_builder`] gives a frozen network's weights as constants.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;

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

/// A builder over the variables of `map` as constants: detached views sharing the variables'
/// storage (no copy; a later in-place `Var::set` shows through).
///
/// A network built from it computes what the one built on `map` computes, bit for bit, without
/// recording Candle's autograd graph: a frozen forward then frees each intermediate as soon as
/// the next layer has read it, instead of keeping all of them alive until the output is dropped.
/// Names missing from `map` are errors when the network asks for them.
pub fn frozen_builder(map: &VarMap, dtype: DType, device: &Device) -> VarBuilder<'static> {
    let data = map.data().lock().expect("VarMap lock poisoned");
    let tensors: HashMap<String, Tensor> = data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect();
    VarBuilder::from_tensors(tensors, dtype, device)
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

    #[test]
    fn frozen_builder_gives_the_same_function_without_a_graph() {
        use candle_core::Module;
        let dev = Device::Cpu;
        let map = VarMap::new();
        let vb = crate::seeded_var_builder(&map, 3, DType::F32, &dev);
        let live = candle_nn::linear(4, 3, vb.pp("l")).unwrap();
        let frozen =
            candle_nn::linear(4, 3, frozen_builder(&map, DType::F32, &dev).pp("l")).unwrap();
        let x = Tensor::randn(0f32, 1.0, (5, 4), &dev).unwrap();
        let (a, b) = (live.forward(&x).unwrap(), frozen.forward(&x).unwrap());
        assert_eq!(crate::compare::max_abs_diff(&a, &b).unwrap(), 0.0);
        // The live output depends on the variables; the frozen one is a constant.
        assert!(a
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
            .get(live.weight())
            .is_some());
        let g = b.sum_all().unwrap().backward().unwrap();
        assert!(g.get(live.weight()).is_none());
        // Shared storage: setting a variable in place changes the frozen network too.
        let w = sorted_vars(&map)
            .into_iter()
            .find(|(n, _)| n == "l.weight")
            .unwrap()
            .1;
        w.set(&Tensor::zeros((3, 4), DType::F32, &dev).unwrap())
            .unwrap();
        let bias = frozen
            .bias()
            .unwrap()
            .unsqueeze(0)
            .unwrap()
            .broadcast_as((5, 3))
            .unwrap();
        assert_eq!(
            crate::compare::max_abs_diff(&frozen.forward(&x).unwrap(), &bias).unwrap(),
            0.0
        );
        // A name the map lacks is an error.
        assert!(candle_nn::linear(4, 3, frozen_builder(&map, DType::F32, &dev).pp("m")).is_err());
    }
}
