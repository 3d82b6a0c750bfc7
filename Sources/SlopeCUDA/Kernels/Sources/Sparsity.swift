extension KernelSources {
    /// N:M sparsity: magnitude pruning masks, compression to values + indices, and the compressed-slot kernels.
    static let sparsity = #"""
    // Compressed layout shared by the kernels below: a [rows, cols] matrix keeps cols/m·n slots per row;
    // group g of row r owns slots g·n .. g·n+n−1, positions (0..m−1 inside the group) ascending. Slot s
    // lies in row s / (cols/m·n), group (s % (cols/m·n)) / n, so its dense offset is
    // r·cols + g·m + index = (s / n)·m + index. Kernels reading indices take `index_bits`, 8 or 2 (`slot_index`).
    static __device__ __forceinline__ i64 slot_dense_offset(i64 s, int index, int n, int m) {
        return (s / n) * m + (i64)index;
    }

    // mask [rows, cols] uint8 = 1 for the n largest |x| of each group of m, else 0; x [rows, cols]; within
    // [rows, cols] uint8 or NULL limits the candidates. Row-wise groups are m consecutive elements of a row
    // (cols % m == 0); column-wise (column_wise != 0) m consecutive elements of a column (rows % m == 0),
    // group index (r/m)·cols + c. One thread per group, 1-D grid over rows·cols/m.
    extern "C" __global__ void prune_mask(const T* x, const unsigned char* within, unsigned char* mask, long long rows,
                                          long long cols, int n, int m, int column_wise) {
        GRID_STRIDE(group, rows * cols / m) {
            i64 base, stride;
            if (column_wise) {
                base = (group / cols) * (i64)m * cols + group % cols;
                stride = cols;
            } else {
                i64 per_row = cols / m;
                base = (group / per_row) * cols + (group % per_row) * m;
                stride = 1;
            }
            // The output doubles as the "already taken" record, so m is not bounded by a register bitmask.
            for (int p = 0; p < m; ++p) mask[base + p * stride] = 0;
            for (int pass = 0; pass < n; ++pass) {
                int best = -1;
                float best_magnitude = 0.0f;
                for (int p = 0; p < m; ++p) {
                    i64 e = base + p * stride;
                    if (mask[e] != 0) continue;
                    if (within != 0 && within[e] == 0) continue;
                    float a = fabsf(to_float(x[e]));
                    // Strict >: ties keep the lower position, exactly like the CPU reference.
                    if (best < 0 || a > best_magnitude) {
                        best = p;
                        best_magnitude = a;
                    }
                }
                if (best < 0) break;  // fewer than n candidates: keep just those
                mask[base + best * stride] = 1;
            }
        }
    }

    // values [rows, cols/m·n] T, indices [rows, cols/m·n] uint8 from x, mask [rows, cols] (row-wise groups):
    // the kept positions plus the lowest pruned ones as zero-valued padding until n are chosen, ascending.
    // A group keeping more than n sets *overfull = 1 and writes nothing. One thread per group, 1-D grid
    // over rows·cols/m.
    extern "C" __global__ void compress(const T* x, const unsigned char* mask, T* values, unsigned char* indices,
                                        int* overfull, long long rows, long long cols, int n, int m) {
        GRID_STRIDE(group, rows * cols / m) {
            // Row-wise groups tile each row exactly, so group g's elements start at g·m and its slots at g·n.
            i64 base = group * m;
            int kept = 0;
            for (int p = 0; p < m; ++p) kept += mask[base + p] != 0;
            if (kept > n) {
                if (overfull != 0) atomicExch(overfull, 1);
                continue;
            }
            int padding = n - kept;
            i64 slot = group * n;
            for (int p = 0; p < m && slot < (group + 1) * n; ++p) {
                bool keep = mask[base + p] != 0;
                if (!keep) {
                    if (padding == 0) continue;
                    --padding;
                }
                values[slot] = keep ? x[base + p] : from_float<T>(0.0f);
                indices[slot] = (unsigned char)p;
                ++slot;
            }
        }
    }

    // dense [rows, cols] (zeroed beforehand) at each slot's position = values; values, indices
    // [rows, cols/m·n]; one thread per slot, 1-D grid over rows·cols/m·n.
    extern "C" __global__ void decompress(const T* values, const unsigned char* indices, T* dense, long long rows,
                                          long long cols, int n, int m, int index_bits) {
        GRID_STRIDE(s, rows * (cols / m) * n) dense[slot_dense_offset(s, slot_index(indices, s, index_bits), n, m)] = values[s];
    }

    // values [rows, cols/m·n] = dense [rows, cols] at each slot's position (added to values when accumulate);
    // one thread per slot, 1-D grid over rows·cols/m·n.
    extern "C" __global__ void gather_compressed(const T* dense, const unsigned char* indices, T* values,
                                                 long long rows, long long cols, int n, int m, int accumulate, int index_bits) {
        GRID_STRIDE(s, rows * (cols / m) * n) {
            T x = dense[slot_dense_offset(s, slot_index(indices, s, index_bits), n, m)];
            values[s] = accumulate ? from_float<T>(to_float(values[s]) + to_float(x)) : x;
        }
    }

    // gather_compressed for 2:4 with rows of whole 16-element runs: a thread takes 4 groups (16 dense
    // elements read as 16-byte packs, their 8 indices as one 8-byte word, or one 2-byte word when packed) and writes
    // (or adds to) their 8 slots.
    extern "C" __global__ void gather_compressed_2_4(const T* dense, const unsigned char* indices, T* values, long long quads, int accumulate,
                                                     int index_bits) {
        const int width = index_bits == 8 ? 8 : 2;
        GRID_STRIDE(q, quads) {
            Pack<T> d[16 / PACK], out[8 / PACK];  // indexed by constants only, so they stay in registers
            #pragma unroll
            for (int p = 0; p < 16 / PACK; ++p) d[p] = ((const Pack<T>*)(dense + q * 16))[p];
            unsigned long long slots = index_bits == 8 ? ((const unsigned long long*)indices)[q] : ((const unsigned short*)indices)[q];
            #pragma unroll
            for (int s = 0; s < 8; ++s) {
                int index = (int)((slots >> (width * s)) & 3ull), e = (s / 2) * 4;
                T v0 = d[e / PACK].v[e % PACK], v1 = d[(e + 1) / PACK].v[(e + 1) % PACK];
                T v2 = d[(e + 2) / PACK].v[(e + 2) % PACK], v3 = d[(e + 3) / PACK].v[(e + 3) % PACK];
                out[s / PACK].v[s % PACK] = index == 0 ? v0 : index == 1 ? v1 : index == 2 ? v2 : v3;
            }
            #pragma unroll
            for (int p = 0; p < 8 / PACK; ++p) {
                if (accumulate) {
                    Pack<T> before = ((const Pack<T>*)(values + q * 8))[p];
                    #pragma unroll
                    for (int j = 0; j < PACK; ++j) out[p].v[j] = from_float<T>(to_float(before.v[j]) + to_float(out[p].v[j]));
                }
                ((Pack<T>*)(values + q * 8))[p] = out[p];
            }
        }
    }

    // mask [rows, cols] uint8 (zeroed beforehand) = 1 at each slot's position; one thread per slot, 1-D grid
    // over rows·cols/m·n.
    extern "C" __global__ void slot_mask(const unsigned char* indices, unsigned char* mask, long long rows,
                                         long long cols, int n, int m, int index_bits) {
        GRID_STRIDE(s, rows * (cols / m) * n) mask[slot_dense_offset(s, slot_index(indices, s, index_bits), n, m)] = 1;
    }

    // packed [ceil(count / 4)] = indices [count] (each < 4) at 2 bits each, as `slot_index` reads them with bits = 2;
    // one thread per packed byte.
    extern "C" __global__ void pack_slot_indices(const unsigned char* indices, unsigned char* packed, long long count) {
        GRID_STRIDE(b, (count + 3) / 4) {
            unsigned int byte = 0;
            for (int q = 0; q < 4 && b * 4 + q < count; ++q) byte |= (unsigned int)(indices[b * 4 + q] & 3) << (2 * q);
            packed[b] = (unsigned char)byte;
        }
    }

    // indices [count] one per byte from their packed form; one thread per slot.
    extern "C" __global__ void unpack_slot_indices(const unsigned char* packed, unsigned char* indices, long long count) {
        GRID_STRIDE(s, count) indices[s] = (unsigned char)slot_index(packed, s, 2);
    }

    // The double-pruned transpose's values from W: for every slot s of Wᵀ (compressed [din, dout], groups along
    // dout), the weight W holds at the same position (W compressed [dout, din], groups along din), or 0 where
    // W⊙Mr is zero there. The slot of W is found by searching its group's n indices, so no map is kept
    // (it would cost 4 bytes per kept value on the GPU). One thread per slot of Wᵀ.
    extern "C" __global__ void gather_transpose(const T* w_values, const unsigned char* w_indices, const unsigned char* t_indices,
                                                T* t_values, long long dout, long long din, int n, int m, int w_bits, int t_bits) {
        const i64 t_slots_per_row = (dout / m) * n;
        const i64 w_slots_per_row = (din / m) * n;
        GRID_STRIDE(s, din * t_slots_per_row) {
            i64 j = s / t_slots_per_row;
            i64 o = ((s - j * t_slots_per_row) / n) * m + slot_index(t_indices, s, t_bits);
            // W's row o, group j/m: its n slots, searched for position j%m.
            i64 w_base = o * w_slots_per_row + (j / m) * n;
            int want = (int)(j % m);
            T value = from_float<T>(0.0f);
            for (int q = 0; q < n; ++q) {
                if (slot_index(w_indices, w_base + q, w_bits) == want) { value = w_values[w_base + q]; break; }
            }
            t_values[s] = value;
        }
    }

    // gather_transpose in tiles, for m dividing 64: a block takes a 64 × 64 square of W's dense coordinates,
    // spreads W's slots of it into shared memory (zeros elsewhere), then fills the transpose's slots of the same
    // square from there, so W is read along its rows and Wᵀ written along its rows. Padding slots of Wᵀ point
    // outside Mr (a group of Mc pads only when Mr has fewer than n candidates there), where the tile holds 0.
    // A thread moves V slots at once (8 or 4 when every row holds a multiple of V: one index word, one V-value
    // load or store). Its first two units of each phase are loaded before the tile is cleared, so all of a
    // block's global reads are in flight together (measured on an H200 at 4096 × 16384: one unit at a time, the
    // loads after the clear, reached 29% of DRAM bandwidth). Grid (ceil(din / 64), ceil(dout / 64)), block 256.
    #define SQUARE 64
    template <typename U, int V> struct __align__(V * sizeof(U)) Slots { U v[V]; };
    template <int V> struct IndexWord { typedef unsigned type; };  // V one-byte indices, read as one word
    template <> struct IndexWord<8> { typedef unsigned long long type; };
    template <> struct IndexWord<1> { typedef unsigned char type; };
    // The V indices from `slot` (a multiple of V) one per byte of a word, read as one word of 8·V or 2·V bits.
    template <int V>
    __device__ __forceinline__ typename IndexWord<V>::type index_word(const unsigned char* indices, i64 slot, int bits) {
        typedef typename IndexWord<V>::type Word;
        if (bits == 8) return *(const Word*)(indices + slot);
        unsigned packed = V == 8 ? *(const unsigned short*)(indices + slot / 4) : V == 4 ? indices[slot / 4] : slot_index(indices, slot, 2);
        Word word = 0;
        #pragma unroll
        for (int q = 0; q < V; ++q) word |= (Word)((packed >> (2 * q)) & 3u) << (8 * q);
        return word;
    }
    typedef T SquareRow[SQUARE + 2];  // + 2: a column read by a warp spreads over the banks
    // Where a slot's value lives: W's and Wᵀ's compressed values as they are (Plain), or cuSPARSELt's copies of
    // them, reached through the inverse of each copy's learned map (Mapped: slot → position, packed the way
    // packed_map_slot reads it), whose runs of V slots are V consecutive, aligned positions.
    struct PlainSlots {
        const T* w;
        T* t;
        __device__ __forceinline__ const T* w_at(i64 slot) const { return w + slot; }
        __device__ __forceinline__ T* t_at(i64 slot) const { return t + slot; }
    };
    struct MappedSlots {
        const T* w;
        const unsigned int* w_bases;
        const short* w_offsets;
        int w_log2;
        i64 w_mask;
        T* t;
        const unsigned int* t_bases;
        const short* t_offsets;
        int t_log2;
        i64 t_mask;
        __device__ __forceinline__ const T* w_at(i64 slot) const { return w + packed_map_slot(w_bases, w_offsets, slot, w_log2, w_mask); }
        __device__ __forceinline__ T* t_at(i64 slot) const { return t + packed_map_slot(t_bases, t_offsets, slot, t_log2, t_mask); }
    };
    template <int V, typename Slots_>
    __device__ __forceinline__ void transpose_square(SquareRow* tile, Slots_ at, const unsigned char* w_indices,
                                                     const unsigned char* t_indices, i64 dout, i64 din, int n, int m,
                                                     int w_bits, int t_bits) {
        typedef typename IndexWord<V>::type Word;
        const i64 j0 = (i64)blockIdx.x * SQUARE, o0 = (i64)blockIdx.y * SQUARE;
        const int slots = SQUARE / m * n;  // slots of one 64-wide row segment
        const int units = SQUARE * slots / V, per_row = slots / V;
        const i64 w_slots_per_row = din / m * n, t_slots_per_row = dout / m * n;
        // Unit e covers row r of the square, slots k ..< k + V of that row's segment (in W for the first phase,
        // in Wᵀ for the second); returns the global slot, or -1 outside the matrix.
        auto w_slot = [&](int e) -> i64 {
            int r = e / per_row, k = (e % per_row) * V;
            i64 o = o0 + r, row_slot = (j0 / m) * n + k;
            return e < units && o < dout && row_slot < w_slots_per_row ? o * w_slots_per_row + row_slot : -1;
        };
        auto t_slot = [&](int e) -> i64 {
            int r = e / per_row, k = (e % per_row) * V;
            i64 j = j0 + r, row_slot = (o0 / m) * n + k;
            return e < units && j < din && row_slot < t_slots_per_row ? j * t_slots_per_row + row_slot : -1;
        };
        auto spread = [&](int e, Word indices, const Slots<T, V>& values) {
            int r = e / per_row, k = (e % per_row) * V;
            #pragma unroll
            for (int q = 0; q < V; ++q) tile[r][((k + q) / n) * m + (int)((indices >> (8 * q)) & 255u)] = values.v[q];
        };
        auto collect = [&](int e, Word indices, i64 slot) {
            int r = e / per_row, k = (e % per_row) * V;
            Slots<T, V> values;
            #pragma unroll
            for (int q = 0; q < V; ++q) values.v[q] = tile[((k + q) / n) * m + (int)((indices >> (8 * q)) & 255u)][r];
            *(Slots<T, V>*)at.t_at(slot) = values;
        };
        Slots<T, V> w_early[2];
        Word w_index_early[2] = {0, 0}, t_index_early[2] = {0, 0};
        i64 w_early_slot[2], t_early_slot[2];
        #pragma unroll
        for (int u = 0; u < 2; ++u) {
            int e = threadIdx.x + u * blockDim.x;
            w_early_slot[u] = w_slot(e);
            t_early_slot[u] = t_slot(e);
            if (w_early_slot[u] >= 0) {
                w_index_early[u] = index_word<V>(w_indices, w_early_slot[u], w_bits);
                w_early[u] = *(const Slots<T, V>*)at.w_at(w_early_slot[u]);
            }
            if (t_early_slot[u] >= 0) t_index_early[u] = index_word<V>(t_indices, t_early_slot[u], t_bits);
        }
        const uint4 zero = {0u, 0u, 0u, 0u};
        for (int e = threadIdx.x; e < (int)(SQUARE * sizeof(SquareRow) / 16); e += blockDim.x) ((uint4*)tile)[e] = zero;
        __syncthreads();
        #pragma unroll
        for (int u = 0; u < 2; ++u)
            if (w_early_slot[u] >= 0) spread(threadIdx.x + u * blockDim.x, w_index_early[u], w_early[u]);
        for (int e = threadIdx.x + 2 * blockDim.x; e < units; e += blockDim.x) {  // squares with more slots
            i64 slot = w_slot(e);
            if (slot >= 0) spread(e, index_word<V>(w_indices, slot, w_bits), *(const Slots<T, V>*)at.w_at(slot));
        }
        __syncthreads();
        #pragma unroll
        for (int u = 0; u < 2; ++u)
            if (t_early_slot[u] >= 0) collect(threadIdx.x + u * blockDim.x, t_index_early[u], t_early_slot[u]);
        for (int e = threadIdx.x + 2 * blockDim.x; e < units; e += blockDim.x) {
            i64 slot = t_slot(e);
            if (slot >= 0) collect(e, index_word<V>(t_indices, slot, t_bits), slot);
        }
    }
    extern "C" __global__ void gather_transpose_tiled(const T* w_values, const unsigned char* w_indices, const unsigned char* t_indices,
                                                      T* t_values, long long dout, long long din, int n, int m, int w_bits,
                                                      int t_bits) {
        // One tile for all three widths: each instantiation declaring its own would triple the static shared
        // memory (50 KB in float32, over the 48 KB limit).
        __shared__ __align__(16) SquareRow tile[SQUARE];
        const int slots = SQUARE / m * n;
        const i64 w_slots_per_row = din / m * n, t_slots_per_row = dout / m * n;
        const PlainSlots at = {w_values, t_values};
        if (slots % 8 == 0 && w_slots_per_row % 8 == 0 && t_slots_per_row % 8 == 0)
            transpose_square<8>(tile, at, w_indices, t_indices, dout, din, n, m, w_bits, t_bits);
        else if (slots % 4 == 0 && w_slots_per_row % 4 == 0 && t_slots_per_row % 4 == 0)
            transpose_square<4>(tile, at, w_indices, t_indices, dout, din, n, m, w_bits, t_bits);
        else
            transpose_square<1>(tile, at, w_indices, t_indices, dout, din, n, m, w_bits, t_bits);
    }

    // gather_transpose_tiled from cuSPARSELt's copy of W straight into its copy of Wᵀ (values region; the metadata
    // is already there), each reached through its inverse map: no read-back of W's values, no values of Wᵀ, no
    // scatter. `runs` (8 or 1): the length of the runs of slots both inverse maps keep together and aligned,
    // which allows V-wide accesses. Grid and block as gather_transpose_tiled.
    extern "C" __global__ void transpose_copy_tiled(const T* w_copy, const unsigned int* w_bases, const short* w_offsets, int w_log2,
                                                    long long w_mask, const unsigned char* w_indices, const unsigned char* t_indices,
                                                    T* t_copy, const unsigned int* t_bases, const short* t_offsets, int t_log2,
                                                    long long t_mask, long long dout, long long din, int n, int m, int w_bits,
                                                    int t_bits, int runs) {
        __shared__ __align__(16) SquareRow tile[SQUARE];
        const int slots = SQUARE / m * n;
        const i64 w_slots_per_row = din / m * n, t_slots_per_row = dout / m * n;
        const MappedSlots at = {w_copy, w_bases, w_offsets, w_log2, w_mask, t_copy, t_bases, t_offsets, t_log2, t_mask};
        if (runs % 8 == 0 && slots % 8 == 0 && w_slots_per_row % 8 == 0 && t_slots_per_row % 8 == 0)
            transpose_square<8>(tile, at, w_indices, t_indices, dout, din, n, m, w_bits, t_bits);
        else
            transpose_square<1>(tile, at, w_indices, t_indices, dout, din, n, m, w_bits, t_bits);
    }
    """#
}
