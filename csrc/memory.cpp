#include "memory.h"

#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace embedrt {

void* BufferCache::get(size_t bytes, size_t* cap) {
    const size_t want = (bytes + kAlign - 1) / kAlign * kAlign;
    {
        std::lock_guard<std::mutex> lk(m_);
        for (size_t i = 0; i < n_; ++i) {
            if (cap_[i] >= want && cap_[i] <= 2 * want) {
                void* p = ptr_[i];
                *cap = cap_[i];
                total_ -= cap_[i];
                --n_;
                ptr_[i] = ptr_[n_];
                cap_[i] = cap_[n_];
                return p;
            }
        }
    }
    void* p = std::aligned_alloc(kAlign, want);
    if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, want, MADV_HUGEPAGE);
#endif
    *cap = want;
    return p;
}

void BufferCache::put(void* p, size_t cap) {
    {
        std::lock_guard<std::mutex> lk(m_);
        if (n_ < kMaxCached && total_ + cap <= kMaxBytes) {
            ptr_[n_] = p;
            cap_[n_] = cap;
            ++n_;
            total_ += cap;
            return;
        }
    }
    std::free(p);
}

BufferCache& buffer_cache() {
    static BufferCache* cache = new BufferCache();
    return *cache;
}

}  // namespace embedrt
