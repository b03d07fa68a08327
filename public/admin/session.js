// The signed-in session: Supabase Auth through @supabase/supabase-js (email and password, or a
// magic link), or, on the dev server only, a token minted by `scripts/stack token`.
//
// The local path is offered only when `/admin/local-session` answers `{"local": true}`: the dev
// server serves it, no deployment does (Vercel serves the files of public/ and the functions
// of api/, and neither has that path).

const LOCAL_KEY = "console.local_token";

/** What the deployment offers: `{kind: "local"}`, `{kind: "supabase", client}` or `{kind: "none"}`. */
export async function startSession() {
  if (await isLocal()) return localSession();
  const config = await fetch("/api/admin/config.json").then((r) => (r.ok ? r.json() : {}), () => ({}));
  if (config.supabase_url && config.supabase_key) return supabaseSession(config);
  return { kind: "none" };
}

async function isLocal() {
  try {
    const response = await fetch("/admin/local-session", { cache: "no-store" });
    return response.ok && (await response.json()).local === true;
  } catch {
    return false;
  }
}

function localSession() {
  // `#local-token=…` (what scripts/dev prints) signs in and leaves the address bar.
  const match = location.hash.match(/^#local-token=([\w.-]+)$/);
  if (match) {
    sessionStorage.setItem(LOCAL_KEY, match[1]);
    history.replaceState(null, "", location.pathname + "#/overview");
  }
  return {
    kind: "local",
    async token() {
      return sessionStorage.getItem(LOCAL_KEY);
    },
    async refresh() {
      return false;
    },
    async signInWithToken(token) {
      sessionStorage.setItem(LOCAL_KEY, token.trim());
    },
    async signOut() {
      sessionStorage.removeItem(LOCAL_KEY);
    },
    onChange() {},
  };
}

async function supabaseSession(config) {
  await loadScript("/admin/vendor/supabase.js");
  const client = window.supabase.createClient(config.supabase_url, config.supabase_key, {
    auth: { flowType: "pkce", persistSession: true, autoRefreshToken: true, detectSessionInUrl: true },
  });
  const fail = ({ error }) => {
    if (error) throw new Error(error.message);
  };
  return {
    kind: "supabase",
    // getSession() refreshes an expired session before it answers.
    async token() {
      const { data } = await client.auth.getSession();
      return data.session?.access_token ?? null;
    },
    async refresh() {
      const { data, error } = await client.auth.refreshSession();
      return !error && Boolean(data.session);
    },
    async signInWithPassword(email, password) {
      fail(await client.auth.signInWithPassword({ email, password }));
    },
    async sendMagicLink(email) {
      fail(await client.auth.signInWithOtp({
        email,
        options: { shouldCreateUser: false, emailRedirectTo: location.origin + "/admin/" },
      }));
    },
    async signOut() {
      await client.auth.signOut();
    },
    onChange(callback) {
      client.auth.onAuthStateChange((event) => {
        if (event === "SIGNED_IN" || event === "SIGNED_OUT") setTimeout(callback);
      });
    },
  };
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.append(script);
  });
}
