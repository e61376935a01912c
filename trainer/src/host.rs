//! Tensors brought to the host: values and shape, PyTorch layout.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// A named tensor on the host, PyTorch layout.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A tensor's values and shape on the host.
pub fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> HostTensor {
    let shape = t.dims().to_vec();
    let data = t
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap_or_default();
    HostTensor { shape, data }
}
