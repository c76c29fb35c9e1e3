#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

namespace embedrt {
namespace {

// How long an idle worker watches for the next job before it sleeps: the passes of one
// encoder layer, or of a search, follow each other within microseconds, and waking a
// sleeping thread costs about as long as a short pass.
constexpr auto kSpin = std::chrono::microseconds(50);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

class Pool {
public:
    explicit Pool(int threads) { start(threads); }
    ~Pool() { stop(); }

    int size() const { return size_; }

    void resize(int threads) {
        std::lock_guard<std::mutex> busy(busy_);
        stop();
        start(threads);
    }

    void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
        if (n <= 0) return;
        grain = std::max<int64_t>(grain, 1);
        std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
        if (size_ <= 1 || n <= grain || !busy.owns_lock() || in_parallel_) {
            fn(0, n);
            return;
        }
        in_parallel_ = true;
        int64_t chunk = std::max<int64_t>(grain, (n + size_ * 4 - 1) / (size_ * 4));
        {
            std::lock_guard<std::mutex> lk(m_);
            fn_ = &fn;
            n_ = n;
            chunk_ = chunk;
            next_.store(0);
            error_ = nullptr;
            open_ = true;
            inside_ = 0;
            ++generation_;
        }
        cv_.notify_all();
        work();
        {
            // Every chunk has been claimed: close the job so that workers still waking up do
            // not join, and wait only for those that did (they may still be in a chunk).
            std::unique_lock<std::mutex> lk(m_);
            open_ = false;
            done_cv_.wait(lk, [&] { return inside_ == 0; });
            fn_ = nullptr;
        }
        in_parallel_ = false;
        if (error_) std::rethrow_exception(error_);
    }

private:
    void start(int threads) {
        size_ = std::max(1, threads);
        quit_ = false;
        for (int i = 1; i < size_; ++i) workers_.emplace_back([this] { loop(); });
    }

    void stop() {
        {
            std::lock_guard<std::mutex> lk(m_);
            quit_ = true;
        }
        cv_.notify_all();
        for (auto& t : workers_) t.join();
        workers_.clear();
    }

    void work() {
        for (;;) {
            int64_t b = next_.fetch_add(chunk_);
            if (b >= n_) break;
            int64_t e = std::min(n_, b + chunk_);
            try {
                (*fn_)(b, e);
            } catch (...) {
                std::lock_guard<std::mutex> lk(err_m_);
                if (!error_) error_ = std::current_exception();
                next_.store(n_);
            }
        }
    }

    void loop() {
        uint64_t seen = 0;
        for (;;) {
            const auto until = std::chrono::steady_clock::now() + kSpin;
            while (generation_.load(std::memory_order_acquire) == seen &&
                   !quit_.load(std::memory_order_relaxed) && std::chrono::steady_clock::now() < until)
                cpu_relax();
            {
                std::unique_lock<std::mutex> lk(m_);
                cv_.wait(lk, [&] { return quit_ || generation_ != seen; });
                if (quit_) return;
                seen = generation_;
                if (!open_) continue;
                ++inside_;
            }
            work();
            {
                std::lock_guard<std::mutex> lk(m_);
                if (--inside_ == 0) done_cv_.notify_one();
            }
        }
    }

    int size_ = 1;
    std::vector<std::thread> workers_;
    std::mutex busy_;  // held by the one parallel_for using the pool
    bool in_parallel_ = false;
    std::mutex m_, err_m_;
    std::condition_variable cv_, done_cv_;
    // Written under m_; atomic so that an idle worker may watch them without the lock.
    std::atomic<bool> quit_{false};
    std::atomic<uint64_t> generation_{0};
    bool open_ = false;  // the current job still takes workers
    int inside_ = 0;     // workers inside the current job
    const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
    int64_t n_ = 0, chunk_ = 1;
    std::atomic<int64_t> next_{0};
    std::exception_ptr error_;
};

std::mutex g_pool_m;
Pool* g_pool = nullptr;

Pool& pool() {
    std::lock_guard<std::mutex> lk(g_pool_m);
    if (!g_pool) g_pool = new Pool(default_num_threads());  // never destroyed: workers may outlive statics
    return *g_pool;
}

}  // namespace

int default_num_threads() {
    if (const char* env = std::getenv("EMBEDRT_NUM_THREADS")) {
        int v = std::atoi(env);
        if (v >= 1) return std::min(v, 1024);
    }
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int c = CPU_COUNT(&set);
        if (c >= 1) return c;
    }
#endif
    unsigned hc = std::thread::hardware_concurrency();
    return hc ? static_cast<int>(hc) : 1;
}

int get_num_threads() { return pool().size(); }

void set_num_threads(int n) {
    n = std::max(1, std::min(n, 1024));
    Pool& p = pool();
    if (p.size() != n) p.resize(n);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    pool().run(n, grain, fn);
}

}  // namespace embedrt
