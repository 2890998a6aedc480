/* ---- hand-written: declared by 1.4 but never implemented by it (kept for source compatibility) ---- */
#ifdef __cplusplus
extern "C" {
#endif
void mc_server_reset_all_dns(struct memcache *mc);
void mc_server_reset_dns(struct memcache *mc, const char *hostname, const int port);
#ifdef TCP_NODELAY
void mc_nodelay_enable(struct memcache *mc, const int enable);
void mc_server_nodelay_enable(struct memcache_server *ms, const int enable);
#endif
#ifdef __cplusplus
}
#endif
