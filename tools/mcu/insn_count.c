/* qemu TCG plugin: counts executed guest instructions (all vCPUs summed; the mps2 boards have one).
 *
 * Build: gcc -shared -fPIC -O2 -o libinsn_count.so insn_count.c
 *   (uses the system qemu-plugin.h when built with -DMCU_USE_SYSTEM_QEMU_PLUGIN_H, else the bundled
 *    minimal qemu_plugin_min.h written against QEMU_PLUGIN_VERSION 1 = qemu 7.2)
 * Use:   qemu-system-arm ... -plugin ./libinsn_count.so[,out=/path/file] [-d plugin]
 * At exit, writes "insns: <N>\n" to the file given by out=, or to stderr when no out= is given.
 * Every guest instruction gets an inline 64-bit add executed before it, so an instruction that
 * faults or a translation block left early is counted exactly as executed; the count is
 * deterministic for fixed qemu flags.
 * Test-and-bench infrastructure only (tools/mcu).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MCU_USE_SYSTEM_QEMU_PLUGIN_H
#include <qemu-plugin.h>
#else
#include "qemu_plugin_min.h"
#endif

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t insn_count;
static char *out_path;

static void vcpu_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &insn_count, 1);
    }
}

static void plugin_exit(qemu_plugin_id_t id, void *p)
{
    (void)id;
    (void)p;
    char line[64];
    snprintf(line, sizeof line, "insns: %llu\n", (unsigned long long)insn_count);
    if (out_path) {
        FILE *f = fopen(out_path, "w");
        if (f) {
            fputs(line, f);
            fclose(f);
            return;
        }
    }
    fputs(line, stderr);
    fflush(stderr);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                                           char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            out_path = strdup(argv[i] + 4);
        } else {
            fprintf(stderr, "insn_count: unknown option %s\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, vcpu_tb_trans);
    qemu_plugin_register_atexit_cb(id, plugin_exit, NULL);
    return 0;
}
