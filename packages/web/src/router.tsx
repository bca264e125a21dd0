import { useLayoutEffect, useRef } from 'preact/hooks';
import { AccountScreen } from './account.js';
import type { App } from './app.js';
import { BackupScreen } from './backup.js';
import { LoginScreen } from './login.js';
import { PageNotices } from './notices.js';
import { ConsentScreen } from './oauth-consent.js';
import { ResetScreen } from './reset.js';
import { type Screen, signedIn, titleOf } from './routes.js';
import { SignupScreen } from './signup.js';
import { VerifyScreen } from './verify.js';

/** The whole page under the masthead: the page's notices, then the screen the URL names. */
export function Page({ app }: { app: App }) {
  return (
    <>
      <PageNotices />
      <Router app={app} />
    </>
  );
}

/**
 * The screen of the current visit. Each visit draws its screen afresh (its key), as following a link
 * does: a screen opened again starts from its top with empty fields.
 */
function Router({ app }: { app: App }) {
  const { screen, n } = app.visit;
  const element = useRef<HTMLDivElement>(null);
  useLayoutEffect(() => {
    document.title = titleOf(screen);
    // A new screen opens at its top, where its notice is.
    window.scrollTo(0, 0);
    // On the short form screens, focus the first field still to fill so keyboard users can type at once.
    if (!signedIn(screen))
      [...(element.current?.querySelectorAll('input') ?? [])].find((input) => input.value === '')?.focus();
  }, [n]);
  return (
    <div id="screen" ref={element} data-route={screen.route}>
      <ScreenView key={n} app={app} screen={screen} />
    </div>
  );
}

function ScreenView({ app, screen }: { app: App; screen: Screen }) {
  switch (screen.route) {
    case 'signup':
      return <SignupScreen app={app} />;
    case 'verify':
      return <VerifyScreen app={app} />;
    case 'reset':
      return <ResetScreen app={app} />;
    case 'login':
      return <LoginScreen app={app} />;
    case 'account':
      return <AccountScreen app={app} session={screen.session} />;
    case 'backup':
      return <BackupScreen app={app} session={screen.session} />;
    case 'oauth/consent':
      return <ConsentScreen app={app} uid={screen.uid} />;
  }
}
