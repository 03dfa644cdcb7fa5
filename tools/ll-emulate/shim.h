#include <atomic>
#include <barrier>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>
typedef unsigned short moe_u16; typedef unsigned int moe_u32; typedef unsigned long long moe_u64;
#define __device__
#define __forceinline__ inline
struct bf16 { moe_u16 bits; }; struct f16 { moe_u16 bits; };
inline float __uint_as_float(moe_u32 b){ float f; memcpy(&f,&b,4); return f; }
inline moe_u32 __float_as_uint(float f){ moe_u32 b; memcpy(&b,&f,4); return b; }
inline float to_float(float x){return x;}
inline float to_float(bf16 x){return __uint_as_float(((moe_u32)x.bits)<<16);}
inline float to_float(f16 x){return 0;}
template<typename T> T from_float(float x);
template<> inline float from_float<float>(float x){return x;}
template<> inline bf16 from_float<bf16>(float x){bf16 r; r.bits=(moe_u16)(__float_as_uint(x)>>16); return r;}
template<> inline f16 from_float<f16>(float x){f16 r; r.bits=0; return r;}
struct Dim { unsigned x; };
struct Block { moe_u32 epoch; int failedStep; std::barrier<>* bar; std::atomic<int> orFlags[3]; };
thread_local Dim threadIdx, blockIdx, gridDim, blockDim;
thread_local Block* g_block;
#define __syncthreads() g_block->bar->arrive_and_wait()
inline int atomicMin(int* p, int v){ std::atomic_ref<int> a(*p); int o=a.load(); while(v<o && !a.compare_exchange_weak(o,v)){} return o; }
inline moe_u32 atomicAdd(moe_u32* p, moe_u32 v){ return std::atomic_ref<moe_u32>(*p).fetch_add(v); }
inline moe_u32 atomicCAS(moe_u32* p, moe_u32 c, moe_u32 v){ std::atomic_ref<moe_u32>(*p).compare_exchange_strong(c,v); return c; }
inline void __threadfence(){ std::atomic_thread_fence(std::memory_order_seq_cst);} 
inline void __threadfence_system(){ std::atomic_thread_fence(std::memory_order_seq_cst);} 
inline long long clock64(){ return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
inline void __nanosleep(unsigned){ std::this_thread::yield(); }
// __syncthreads_or: round k of a block uses flag k mod 3; thread 0 clears the flag of round k + 2 (last used in round
// k - 1, which every thread had read before it reached this round's barrier) once past this round's barrier.
thread_local int g_orRound;
inline int __syncthreads_or(int predicate)
{
    int k = g_orRound++ % 3;
    if (predicate)
        g_block->orFlags[k].store(1);
    g_block->bar->arrive_and_wait();
    int any = g_block->orFlags[k].load();
    if (threadIdx.x == 0)
        g_block->orFlags[(k + 2) % 3].store(0);
    return any;
}
inline moe_u32 __ldcg(const moe_u32* p){ return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
