extension KernelSources {
    /// Kernels for measuring, independent of the element type T.
    static let timing = #"""
    // Holds the stream for `nanoseconds` of the GPU's global timer, so that the work the host queues behind it
    // is all enqueued before it starts: CUDA events around that work then time the GPU, not the host's launch
    // overhead (nvbench holds its queue with a blocking kernel for the same reason). One thread.
    // The sleeps also bound the wait should the timer not advance (each lasts up to about twice the 1 µs asked).
    extern "C" __global__ void hold_stream(long long nanoseconds) {
        unsigned long long start, now;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
        for (long long sleeps = 0; sleeps < nanoseconds / 250 + 100; ++sleeps) {
            __nanosleep(1000);
            asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
            if ((long long)(now - start) >= nanoseconds) break;
        }
    }
    """#
}
