// Run-time facts and settings: ISA level, CPU features, threads.
#include "bindings/common.h"
#include "dispatch.h"
#include "parallel.h"

namespace embedrt {

void register_runtime(py::module_& m) {
    m.def("isa", [] { return std::string(isa_name(active_isa())); }, "The ISA level kernels use now.");
    m.def("best_isa", [] { return std::string(isa_name(best_isa())); },
          "The highest ISA level this CPU and OS support.");
    m.def("set_isa", [](const std::string& name) {
        Isa req;
        if (!parse_isa(name, &req))
            throw py::value_error("isa must be one of 'scalar', 'avx2', 'avx512-skx', 'avx512-vnni', 'avx512', 'neon'; got '" + name + "'");
        return std::string(isa_name(set_isa(req)));
    }, py::arg("name"), "Lower (or restore) the ISA level; returns the level actually set.");
    m.def("isa_env_warning", [] { return isa_env_warning(); });
    m.def("cpu_features", [] { return cpu_features().names(); });
    m.def("get_num_threads", &get_num_threads);
    m.def("set_num_threads", [](int n) {
        if (n < 1) throw py::value_error("num_threads must be >= 1, got " + std::to_string(n));
        py::gil_scoped_release nogil;
        set_num_threads(n);
    }, py::arg("n"));
    m.def("default_num_threads", &default_num_threads);
    m.def("compiled_isas", [] {
        py::list out;
        out.append("scalar");
#if defined(EMBEDRT_HAVE_X86)
        out.append("avx2");
        out.append("avx512-skx");
        out.append("avx512-vnni");
        out.append("avx512");
#endif
#if defined(EMBEDRT_HAVE_NEON)
        out.append("neon");
#endif
        return out;
    });
}

}  // namespace embedrt
