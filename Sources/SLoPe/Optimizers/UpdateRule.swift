import SlopeCore

/// Which update the optimizers apply with ``AdamWConfiguration``'s hyper-parameters.
public enum UpdateRule: String, Codable, Sendable, CaseIterable {
    /// PyTorch's AdamW: `w −= lr·(m̂/(√v̂ + ε) + λ·w)`.
    case adamw
    /// LAMB (You et al. 2019) as NVIDIA's BERT recipe runs it (apex's FusedLAMB): AdamW's update `u` scaled per
    /// tensor by the trust ratio `‖w‖/‖u‖` (1 when either is zero), applied to tensors with weight decay — with
    /// `--weight-decay-scope matrices` the weights, not the biases and norm gains.
    case lamb
}
