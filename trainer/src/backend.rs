//! The burn backends the trainer runs on.

/// CPU: burn's ndarray backend with autodiff (tests, CI, small runs).
pub type Cpu = burn::backend::Autodiff<burn::backend::NdArray<f32>>;

/// The CPU device. The first call also lets the backend's matrix multiply use every core:
/// `matrixmultiply` defaults to the *physical* core count (one on a 2-vCPU machine) unless
/// `MATMUL_NUM_THREADS` says otherwise, so that variable is set to the available
/// parallelism when unset. Call it before other threads start.
pub fn cpu() -> burn::backend::ndarray::NdArrayDevice {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            std::env::set_var("MATMUL_NUM_THREADS", n.to_string());
        }
    });
    burn::backend::ndarray::NdArrayDevice::Cpu
}

/// NVIDIA GPU: burn-cuda with autodiff. NVRTC is loaded when the first kernel compiles.
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Autodiff<burn::backend::Cuda<f32, i32>>;

/// GPU `index`.
#[cfg(feature = "cuda")]
pub fn cuda(index: usize) -> burn::backend::cuda::CudaDevice {
    burn::backend::cuda::CudaDevice::new(index)
}
