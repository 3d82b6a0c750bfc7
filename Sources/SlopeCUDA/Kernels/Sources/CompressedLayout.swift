extension KernelSources {
    /// Kernels that learn where cuSPARSELt's compressed format keeps each of W's values, so new values can be
    /// written straight into it after an optimizer step instead of compressing the whole matrix again.
    static let compressedLayout = #"""
    // dense [rows, cols] (zeroed first) gets, at every slot of a row-wise N:M compressed matrix, the base-256 digit
    // `shift` of the slot's number plus 1 (1…256: exact in bf16 and f16, and never zero, so every slot stays kept).
    // Indices as `slot_index` reads them (index_bits 8 or 2).
    extern "C" __global__ void encode_slots(const unsigned char* indices, T* dense, long long rows, long long cols, int n, int m, int shift,
                                            int index_bits) {
        long long slotsPerRow = cols / m * n;
        GRID_STRIDE(s, rows * slotsPerRow) {
            long long r = s / slotsPerRow, k = s % slotsPerRow;
            float digit = (float)(((unsigned long long)s >> shift) & 255ull) + 1.0f;
            dense[r * cols + (k / n) * m + slot_index(indices, s, index_bits)] = from_float<T>(digit);
        }
    }

    // map[p] |= (value at p − 1) << shift for the `count` values at the start of a compressed buffer;
    // a value outside 1…256 (a zero cuSPARSELt added, or metadata) poisons the entry.
    extern "C" __global__ void decode_digits(const T* compressed, unsigned int* map, long long count, int shift, int first) {
        GRID_STRIDE(p, count) {
            float v = to_float(compressed[p]);
            unsigned int digit = (v >= 1.0f && v <= 256.0f && v == floorf(v)) ? (unsigned int)v - 1u : 0xFFFFFFFFu;
            unsigned int previous = first ? 0u : map[p];
            map[p] = (digit == 0xFFFFFFFFu || previous == 0xFFFFFFFFu) ? 0xFFFFFFFFu : previous | (digit << shift);
        }
    }

    // counts[map[p]] += 1 (counts zeroed first); bad[0] = 1 if any entry is out of range.
    extern "C" __global__ void count_map(const unsigned int* map, int* counts, int* bad, long long count) {
        GRID_STRIDE(p, count) {
            unsigned int target = map[p];
            if ((long long)target >= count) { atomicExch(bad, 1); continue; }
            atomicAdd(counts + target, 1);
        }
    }

    // bad[0] = 1 unless every slot was hit exactly once: the map is then a permutation.
    extern "C" __global__ void check_counts(const int* counts, int* bad, long long count) {
        GRID_STRIDE(i, count) if (counts[i] != 1) atomicExch(bad, 1);
    }

    // compressed[p] = values[map[p]]: W's current values into cuSPARSELt's layout, metadata untouched.
    extern "C" __global__ void scatter_values(const T* values, const unsigned int* map, T* compressed, long long count) {
        GRID_STRIDE(p, count) compressed[p] = values[map[p]];
    }

    // values[map[p]] = compressed[p]: W's values read back from cuSPARSELt's layout (scatter_values undone).
    extern "C" __global__ void gather_values(const T* compressed, const unsigned int* map, T* values, long long count) {
        GRID_STRIDE(p, count) values[map[p]] = compressed[p];
    }

    // inverse[map[p]] = p: for each slot of W's compressed order, its position in cuSPARSELt's copy.
    extern "C" __global__ void invert_map(const unsigned int* map, unsigned int* inverse, long long count) {
        GRID_STRIDE(p, count) inverse[map[p]] = (unsigned int)p;
    }

    // bad[0] = 1 unless every run of `run` slots (from a multiple of run) sits at `run` consecutive positions
    // starting at a multiple of run: then a thread may move a run as one aligned vector.
    extern "C" __global__ void check_runs(const unsigned int* inverse, int* bad, long long count, int run) {
        GRID_STRIDE(s, count) {
            long long first = s - s % run;
            if ((inverse[first] % run) != 0 || (long long)inverse[s] != (long long)inverse[first] + s % run) atomicExch(bad, 1);
        }
    }

    // The map packed to 16 bits: positions in blocks of 2^log2_block, per block the slot of its first position
    // (bases), per position the signed offset from it (offsets). cuSPARSELt keeps each value near where
    // W's compressed order has it, so offsets fit int16 at some block size and the map halves.
    // bad[0] = 1 if some position's offset does not fit at this block size.
    extern "C" __global__ void check_block_offsets(const unsigned int* map, int* bad, long long count, int log2_block) {
        GRID_STRIDE(p, count) {
            long long offset = (long long)map[p] - (long long)map[(p >> log2_block) << log2_block];
            if (offset < -32768 || offset > 32767) atomicExch(bad, 1);
        }
    }

    // bad[0] = 1 unless every block's offsets repeat the first block's: cuSPARSELt's layout is then tiles of
    // 2^log2_block positions laid out alike, and one block of offsets serves the whole matrix.
    extern "C" __global__ void check_periodic_offsets(const unsigned int* map, int* bad, long long count, int log2_block) {
        GRID_STRIDE(p, count) {
            long long mask = (1ll << log2_block) - 1;
            long long offset = (long long)map[p] - (long long)map[p & ~mask];
            if (offset != (long long)map[p & mask] - (long long)map[0]) atomicExch(bad, 1);
        }
    }

    // Writes the bases of every block and the offsets of the first offset_count positions (all of them, or the
    // first block's when the offsets repeat).
    extern "C" __global__ void pack_block_offsets(const unsigned int* map, unsigned int* bases, short* offsets, long long count,
                                                  int log2_block, long long offset_count) {
        GRID_STRIDE(p, count) {
            unsigned int base = map[(p >> log2_block) << log2_block];
            if ((p & ((1ll << log2_block) - 1)) == 0) bases[p >> log2_block] = base;
            if (p < offset_count) offsets[p] = (short)((long long)map[p] - (long long)base);
        }
    }

    // Copies between W's values and cuSPARSELt's layout through the packed map: compressed[p] = values[slot(p)]
    // (scatter), or back (GATHER). Position p's offset is offsets[p & offset_mask] (offset_mask = −1 when every
    // position has its own, 2^log2_block − 1 when the offsets repeat). When count is a multiple of 8, a thread
    // takes 8 consecutive positions (one 16-byte load of offsets, 16-byte loads or stores of the copy, 8
    // independent accesses to the values); blocks of the map are ≥ 64 positions, so the 8 share one base.
    template <bool GATHER>
    __device__ void copy_through_packed_map(T* values, const unsigned int* bases, const short* offsets, T* compressed,
                                            long long count, int log2_block, long long offset_mask) {
        if (count % 8 == 0 && aligned16(offsets) && aligned16(compressed)) {
            GRID_STRIDE(q, count / 8) {
                i64 base = bases[(q * 8) >> log2_block];
                uint4 packed = ((const uint4*)offsets)[((q * 8) & offset_mask) / 8];
                unsigned words[4] = {packed.x, packed.y, packed.z, packed.w};
                Pack<T>* copy = (Pack<T>*)(compressed + q * 8);
                Pack<T> run[8 / PACK];
                if (GATHER) {
                    #pragma unroll
                    for (int p = 0; p < 8 / PACK; ++p) run[p] = copy[p];
                }
                #pragma unroll
                for (int j = 0; j < 8; ++j) {
                    T& value = values[base + (short)(words[j >> 1] >> (16 * (j & 1)))];
                    if (GATHER) value = run[j / PACK].v[j % PACK]; else run[j / PACK].v[j % PACK] = value;
                }
                if (!GATHER) {
                    #pragma unroll
                    for (int p = 0; p < 8 / PACK; ++p) copy[p] = run[p];
                }
            }
            return;
        }
        GRID_STRIDE(p, count) {
            T& value = values[packed_map_slot(bases, offsets, p, log2_block, offset_mask)];
            if (GATHER) value = compressed[p]; else compressed[p] = value;
        }
    }

    extern "C" __global__ void scatter_values_packed(const T* values, const unsigned int* bases, const short* offsets, T* compressed,
                                                     long long count, int log2_block, long long offset_mask) {
        copy_through_packed_map<false>((T*)values, bases, offsets, compressed, count, log2_block, offset_mask);
    }

    extern "C" __global__ void gather_values_packed(const T* compressed, const unsigned int* bases, const short* offsets, T* values,
                                                    long long count, int log2_block, long long offset_mask) {
        copy_through_packed_map<true>(values, bases, offsets, (T*)compressed, count, log2_block, offset_mask);
    }
    """#
}
