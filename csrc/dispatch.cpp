#include "dispatch.h"

#include <atomic>
#include <cstdlib>
#include <cstdint>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define EMBEDRT_X86_PROBE 1
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#define EMBEDRT_ARM_PROBE 1
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

namespace embedrt {
namespace {

#ifdef EMBEDRT_X86_PROBE
uint64_t read_xcr0() {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (uint64_t(edx) << 32) | eax;
}
#endif

CpuFeatures probe() {
    CpuFeatures f;
#ifdef EMBEDRT_X86_PROBE
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
    unsigned max_leaf = a;
    __get_cpuid(1, &a, &b, &c, &d);
    f.popcnt = c & (1u << 23);
    f.fma = c & (1u << 12);
    f.f16c = c & (1u << 29);
    bool osxsave = c & (1u << 27);
    f.avx = c & (1u << 28);
    if (osxsave) {
        uint64_t xcr0 = read_xcr0();
        f.os_avx = (xcr0 & 0x6) == 0x6;            // XMM and YMM state
        f.os_avx512 = (xcr0 & 0xE6) == 0xE6;       // + opmask, ZMM_Hi256, Hi16_ZMM
    }
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f.avx2 = b & (1u << 5);
        f.bmi2 = b & (1u << 8);
        f.avx512f = b & (1u << 16);
        f.avx512dq = b & (1u << 17);
        f.avx512cd = b & (1u << 28);
        f.avx512bw = b & (1u << 30);
        f.avx512vl = b & (1u << 31);
        f.avx512vbmi = c & (1u << 1);
        f.avx512vnni = c & (1u << 11);
        f.avx512bitalg = c & (1u << 12);
        f.avx512vpopcntdq = c & (1u << 14);
        __cpuid_count(7, 1, a, b, c, d);
        f.avxvnni = a & (1u << 4);
        f.avx512bf16 = a & (1u << 5);
    }
    if (!f.os_avx) {
        f.avx = f.avx2 = f.fma = f.f16c = f.avxvnni = false;
    }
    if (!f.os_avx512) {
        f.avx512f = f.avx512cd = f.avx512bw = f.avx512dq = f.avx512vl = false;
        f.avx512vpopcntdq = f.avx512vnni = f.avx512vbmi = f.avx512bitalg = f.avx512bf16 = false;
    }
#endif
#ifdef EMBEDRT_ARM_PROBE
    unsigned long hw = getauxval(AT_HWCAP);
    f.neon = hw & HWCAP_ASIMD;
    f.dotprod = hw & HWCAP_ASIMDDP;
#elif defined(__aarch64__)
    f.neon = true;
#endif
    return f;
}

Isa compute_best(const CpuFeatures& f) {
#if defined(EMBEDRT_HAVE_X86)
    const bool avx2 = f.avx2 && f.fma && f.bmi2 && f.popcnt && f.f16c;
    const bool skx = avx2 && f.avx512f && f.avx512cd && f.avx512bw && f.avx512dq && f.avx512vl;
    const bool vnni = skx && f.avx512vnni;
    if (vnni && f.avx512vpopcntdq && f.avx512vbmi && f.avx512bitalg) return Isa::avx512;
    if (vnni) return Isa::avx512_vnni;
    if (skx) return Isa::avx512_skx;
    if (avx2) return Isa::avx2;
#endif
#if defined(EMBEDRT_HAVE_NEON)
    if (f.neon && f.dotprod) return Isa::neon;
#endif
    (void)f;
    return Isa::scalar;
}

std::string g_env_warning;

Isa initial_isa() {
    Isa best = best_isa();
    const char* env = std::getenv("EMBEDRT_ISA");
    if (!env || !*env) return best;
    Isa req;
    if (!parse_isa(env, &req)) {
        g_env_warning = std::string("EMBEDRT_ISA=") + env +
                        " is not one of scalar, avx2, avx512-skx, avx512-vnni, avx512, neon; using " +
                        isa_name(best);
        return best;
    }
    if (!isa_at_least(best, req)) {
        g_env_warning = std::string("EMBEDRT_ISA=") + env + " is not supported by this CPU; using " +
                        isa_name(best);
        return best;
    }
    return req;
}

std::atomic<int>& active_level() {
    static std::atomic<int> level{static_cast<int>(initial_isa())};
    return level;
}

}  // namespace

std::vector<std::string> CpuFeatures::names() const {
    std::vector<std::string> out;
    auto add = [&](bool v, const char* n) { if (v) out.emplace_back(n); };
    add(popcnt, "popcnt"); add(avx, "avx"); add(avx2, "avx2"); add(fma, "fma"); add(bmi2, "bmi2");
    add(f16c, "f16c"); add(avxvnni, "avx_vnni");
    add(avx512f, "avx512f"); add(avx512cd, "avx512cd"); add(avx512bw, "avx512bw");
    add(avx512dq, "avx512dq"); add(avx512vl, "avx512vl"); add(avx512vpopcntdq, "avx512_vpopcntdq");
    add(avx512vnni, "avx512_vnni"); add(avx512vbmi, "avx512_vbmi"); add(avx512bitalg, "avx512_bitalg");
    add(avx512bf16, "avx512_bf16"); add(neon, "neon"); add(dotprod, "dotprod");
    return out;
}

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = probe();
    return f;
}

Isa best_isa() {
    static const Isa best = compute_best(cpu_features());
    return best;
}

Isa active_isa() { return static_cast<Isa>(active_level().load(std::memory_order_relaxed)); }

Isa set_isa(Isa requested) {
    Isa best = best_isa();
    Isa chosen = isa_at_least(best, requested) ? requested : best;
    active_level().store(static_cast<int>(chosen));
    return chosen;
}

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::scalar: return "scalar";
        case Isa::neon: return "neon";
        case Isa::avx2: return "avx2";
        case Isa::avx512_skx: return "avx512-skx";
        case Isa::avx512_vnni: return "avx512-vnni";
        case Isa::avx512: return "avx512";
    }
    return "scalar";
}

bool parse_isa(const std::string& name, Isa* out) {
    if (name == "scalar") *out = Isa::scalar;
    else if (name == "neon") *out = Isa::neon;
    else if (name == "avx2") *out = Isa::avx2;
    else if (name == "avx512-skx" || name == "avx512_skx") *out = Isa::avx512_skx;
    else if (name == "avx512-vnni" || name == "avx512_vnni") *out = Isa::avx512_vnni;
    else if (name == "avx512") *out = Isa::avx512;
    else return false;
    return true;
}

const std::string& isa_env_warning() {
    active_level();  // make sure the environment has been read
    return g_env_warning;
}

}  // namespace embedrt
