// CPU feature probe and the ISA level used by every kernel family.
//
// The level is chosen once (CPUID + XGETBV on x86, getauxval on Linux/arm64) and can be
// lowered, never raised, by EMBEDRT_ISA or set_isa(). Kernels read active_isa() on every
// call, so a lowered level takes effect at once.
#pragma once

#include <string>
#include <vector>

namespace embedrt {

// Ordered: a higher value needs everything a lower one needs (the x86 levels form one chain;
// neon is the aarch64 level). Each kernel family maps the active level to the best variant it
// has for it (a family without a variant of its own at a level runs the one below).
enum class Isa : int {
    scalar = 0,
    neon = 1,         // aarch64: ASIMD + dot product
    avx2 = 2,         // x86-64: AVX2, FMA, BMI2, POPCNT, F16C (Haswell, Zen 1-3)
    avx512_skx = 3,   // + AVX-512 F/CD/BW/DQ/VL (Skylake-SP)
    avx512_vnni = 4,  // + AVX512-VNNI (Cascade Lake, Cooper Lake)
    avx512 = 5,       // + VPOPCNTDQ, VBMI, BITALG (Ice Lake, Sapphire Rapids, Zen 4 and later)
};

// Whether `level` includes everything `need` needs (both x86 levels, or equal).
inline bool isa_at_least(Isa level, Isa need) {
    if (level == need || need == Isa::scalar) return true;
    if (level == Isa::neon || need == Isa::neon) return false;
    return static_cast<int>(level) >= static_cast<int>(need);
}

struct CpuFeatures {
    bool popcnt = false, avx = false, avx2 = false, fma = false, bmi2 = false, f16c = false;
    bool avx512f = false, avx512cd = false, avx512bw = false, avx512dq = false, avx512vl = false;
    bool avx512vpopcntdq = false, avx512vnni = false, avx512vbmi = false, avx512bitalg = false;
    bool avx512bf16 = false, avxvnni = false;
    bool os_avx = false, os_avx512 = false;  // XGETBV: the OS saves the YMM / ZMM state
    bool neon = false, dotprod = false;
    std::vector<std::string> names() const;
};

const CpuFeatures& cpu_features();
Isa best_isa();    // the highest level this CPU and OS support
Isa active_isa();  // the level kernels use now
// Lowers (or restores up to best_isa()) the active level. Returns the level actually set.
Isa set_isa(Isa requested);
const char* isa_name(Isa isa);
bool parse_isa(const std::string& name, Isa* out);
// The warning produced when EMBEDRT_ISA asked for more than the CPU has (empty if none).
const std::string& isa_env_warning();

}  // namespace embedrt
