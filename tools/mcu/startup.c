/* Minimal Cortex-M startup for qemu `-M mps2-an386` / `-M mps3-an547` with newlib's rdimon crt0.
 *
 * rdimon's crt0 provides `_start` (zeroes .bss, sets up semihosting stdio, calls main, exits with
 * main's return value) but no vector table: this file supplies it at address 0 (see mps2.ld).
 * Test-and-bench infrastructure only (tools/mcu), not shipped in the convertkit package.
 */
#include <stdint.h>

#ifdef __cplusplus /* build() compiles this file with g++ when the program has C++ sources */
extern "C" {
#endif

extern uint32_t __StackTop;   /* from mps2.ld */
extern void _start(void);     /* newlib rdimon crt0 */

/* Semihosting: SYS_WRITE0 (0x04) prints a NUL-terminated string, SYS_EXIT (0x18) stops qemu. */
static void semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
}

/* Any fault or unexpected exception: say so and stop qemu with a failure status instead of hanging.
 * ADP_Stopped_RunTimeErrorUnknown (0x20023) makes qemu exit with status 1; the marker line lets
 * mcu.run() tell a fault from `return 1`. */
__attribute__((noreturn, used)) void mcu_fault_handler(void)
{
    semihost(0x04, "\n*** MCU_FAULT: unexpected exception or fault\n");
    semihost(0x18, (const void *)0x20023u);
    for (;;) {
    }
}

__attribute__((noreturn, naked)) void Reset_Handler(void)
{
#if defined(__ARM_FP)
    /* Enable CP10/CP11 (the FPU): CPACR bits 20-23, before any floating-point instruction. */
    __asm__ volatile(
        "ldr r0, =0xE000ED88\n"
        "ldr r1, [r0]\n"
        "ldr r2, =0x00F00000\n"
        "orr r1, r1, r2\n"
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n" ::: "r0", "r1", "r2", "memory");
#endif
    /* an absolute jump: ARMv6-M's "b" reaches only +-2 KB, and _start may lie beyond large code */
    __asm__ volatile("ldr r0, =_start\n"
                     "bx r0\n" ::: "r0");
    __builtin_unreachable();
}

/* rdimon's crt0 sets newlib's heap limit from qemu's SYS_HEAPINFO answer, which on mps2-an386 lies
 * past the end of the 4 MB SSRAM2/3 that holds .data/.bss and the heap (0x20400000 starts an alias of
 * it). Runs from __libc_init_array, after crt0's HEAPINFO and before main, to bound the heap to RAM. */
extern char *__heap_limit; /* librdimon */
extern char __HeapLimit[]; /* mps2.ld */
__attribute__((constructor(101), used)) static void mcu_bound_heap(void)
{
    __heap_limit = __HeapLimit;
}

typedef void (*vector_t)(void);

/* Cortex-M core vectors: initial SP, Reset, NMI, HardFault, MemManage, BusFault, UsageFault,
 * 4 reserved, SVCall, DebugMonitor, reserved, PendSV, SysTick. No device IRQs are used. */
__attribute__((section(".isr_vector"), used)) const vector_t mcu_vector_table[16] = {
    (vector_t)(uintptr_t)&__StackTop,
    Reset_Handler,
    mcu_fault_handler, /* NMI */
    mcu_fault_handler, /* HardFault */
    mcu_fault_handler, /* MemManage */
    mcu_fault_handler, /* BusFault */
    mcu_fault_handler, /* UsageFault */
    0, 0, 0, 0,
    mcu_fault_handler, /* SVCall */
    mcu_fault_handler, /* DebugMonitor */
    0,
    mcu_fault_handler, /* PendSV */
    mcu_fault_handler, /* SysTick */
};

#ifdef __cplusplus
}
#endif
