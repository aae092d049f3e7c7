//! `tune_cpu_process` sets an environment variable, so it is tested alone in its own process
//! (unit tests share one process and run in parallel threads that read the environment).

#[test]
fn tuning_keeps_the_thread_counts_and_allocates_afterwards() {
    let before = candle_core::utils::get_num_threads();
    let user_set = std::env::var_os("RAYON_NUM_THREADS").is_some();
    let t = cmkd_train::process::tune_cpu_process();
    assert_eq!(t.candle_threads, before);
    assert_eq!(candle_core::utils::get_num_threads(), before);
    assert_eq!(t.fixed_thread_env, !user_set);
    assert_eq!(t.rayon_threads, rayon::current_num_threads());
    if !user_set {
        let logical = std::thread::available_parallelism().unwrap().get();
        assert_eq!(t.rayon_threads, logical);
        assert_eq!(
            std::env::var("RAYON_NUM_THREADS").unwrap(),
            before.to_string()
        );
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        assert!(t.malloc_keeps_memory);
    }
    // Large blocks still allocate, free and come back once malloc keeps freed memory.
    for i in 0..3 {
        let v = vec![i as f32; 16 << 20];
        assert_eq!(v[(16 << 20) - 1], i as f32);
        assert!(v.iter().all(|&x| x == i as f32));
    }
    // Candle works on it (a matrix product reads the thread count).
    let a = candle_core::Tensor::ones((64, 64), candle_core::DType::F32, &candle_core::Device::Cpu)
        .unwrap();
    let s = a
        .matmul(&a)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(s, 64.0 * 64.0 * 64.0);
}
