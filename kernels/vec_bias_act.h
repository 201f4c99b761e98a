/* The fused bias + activation epilogue on one GCC vector, shared by the register-blocked kernels
   (depthwise_rows.h, pointwise_gemm.h): v = f(v + bv) for ACT_IDENTITY (0), ACT_RELU (1) and ACT_LEAKY_RELU (2),
   the bits of _bias_act_rows.pxi ("0 if z < 0 else z": a NaN stays NaN; "z if z > 0 else z * a"), as selects on
   the comparison masks. VT is the float vector type, VIT the int vector of the same size. A macro, not a function:
   a vector argument would change the ABI of the baseline build. */
#ifndef MINICNN_VEC_BIAS_ACT_H
#define MINICNN_VEC_BIAS_ACT_H
#define VEC_BIAS_ACT(VT, VIT, v, bv, act, alpha) do {                                             \
    const VT zero_v_ = {0};                                                                       \
    (v) = (v) + (bv);                                                                             \
    if ((act) == 1) {                                                                             \
        (v) = (VT)((VIT)(v) & ~((v) < zero_v_));                                                  \
    } else if ((act) == 2) {                                                                      \
        VIT m_ = (v) > zero_v_;                                                                   \
        (v) = (VT)(((VIT)(v) & m_) | ((VIT)((v) * (alpha)) & ~m_));                               \
    }                                                                                             \
} while (0)
#endif
