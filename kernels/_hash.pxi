# The counter-based hash of the dropout masks and the augmentation draws (minicnn.backend.hash_rng is the
# reference): Wellons' lowbias32 applied twice, keyed by two 32-bit words. One definition for every .pyx.
from libc.stdint cimport uint32_t


cdef inline uint32_t mix32(uint32_t h) noexcept nogil:
    h ^= h >> 16
    h *= <uint32_t>0x7FEB352D
    h ^= h >> 15
    h *= <uint32_t>0x846CA68B
    h ^= h >> 16
    return h


cdef inline uint32_t counter_hash(uint32_t i, uint32_t key0, uint32_t key1) noexcept nogil:
    return mix32(mix32(i ^ key0) ^ key1)
