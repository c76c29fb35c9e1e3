// One process-wide worker pool shared by every kernel.
//
// parallel_for splits [0, n) into chunks and runs them on the pool and the calling thread.
// It runs inline when one thread is configured, the range is smaller than one grain, or the
// pool is already busy (a nested call, or another Python thread inside a kernel), so it never
// deadlocks and never oversubscribes the cores.
#pragma once

#include <cstdint>
#include <functional>

namespace embedrt {

int get_num_threads();
void set_num_threads(int n);   // n >= 1
int default_num_threads();     // EMBEDRT_NUM_THREADS, else the cores this process may use

// fn(begin, end) is called on disjoint ranges covering [0, n); chunks hold at least `grain`
// items. The first exception thrown by fn is rethrown in the caller after all chunks stop.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Scratch memory: chunks may run inline on any thread (including another Python thread's
// concurrent call), so use thread_local buffers or allocate per chunk, never a table indexed
// by a thread number.

}  // namespace embedrt
