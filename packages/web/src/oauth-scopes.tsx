/**
 * Scope names as people read them, for the OAuth screens (issue 9): the consent page and the list of
 * granted apps show the same words for the same scope.
 */

/** Names people read for the protocol's own scopes; an app's scopes show as registered. */
const SCOPE_NAMES: Record<string, string> = {
  openid: 'Know who you are (your account ID)',
  offline_access: 'Stay signed in when you are away',
};

export function ScopeName({ scope }: { scope: string }) {
  const name = SCOPE_NAMES[scope];
  return name === undefined ? <code>{scope}</code> : name;
}
