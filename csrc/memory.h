// Memory for large outputs. Fresh pages from the OS cost a page fault and a zeroing each,
// more than a kernel's own writes to them, so buffers of kMin bytes and more are 2 MiB aligned
// (transparent huge pages where the OS offers them) and, once released, kept in a small cache
// for the next call, as caching allocators do.
#pragma once

#include <cstddef>
#include <mutex>

namespace embedrt {

class BufferCache {
public:
    static constexpr size_t kMin = size_t(4) << 20;        // smaller requests: ordinary memory
    static constexpr size_t kAlign = size_t(2) << 20;
    static constexpr size_t kMaxCached = 4;                // buffers kept
    static constexpr size_t kMaxBytes = size_t(512) << 20; // bytes kept

    // A buffer of at least `bytes` (a multiple of kAlign; its size in *cap). Throws
    // std::bad_alloc.
    void* get(size_t bytes, size_t* cap);
    // Gives back a buffer from get(): cached, or freed when the cache is full.
    void put(void* p, size_t cap);

private:
    std::mutex m_;
    void* ptr_[kMaxCached] = {};
    size_t cap_[kMaxCached] = {};
    size_t n_ = 0, total_ = 0;
};

// The process's cache (never destroyed: arrays that hold its buffers may outlive statics).
BufferCache& buffer_cache();

}  // namespace embedrt
