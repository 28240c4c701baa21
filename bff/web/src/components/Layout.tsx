// The page frame: skip link, header with the nav (with the cart's item count), main, footer.

import { useEffect, useRef, useState } from "react";
import { Link, NavLink, Outlet, useLocation, useNavigate } from "react-router";
import { logout } from "../api/client";
import { hasRole, useSession } from "../auth/session";
import { forgetCart, loadCart, useCart } from "../cart/store";

export function Layout() {
  const session = useSession();
  const navigate = useNavigate();
  const location = useLocation();
  const [busy, setBusy] = useState(false);
  const main = useRef<HTMLElement>(null);
  const first = useRef(true);
  const cart = useCart();
  const user = session?.claims.sub ?? null;

  // The header's cart count belongs to whoever is signed in: load it on sign-in, drop it on
  // sign-out (the pages that change the cart keep it current from their answers).
  useEffect(() => {
    if (user === null) forgetCart();
    else void loadCart(user);
  }, [user]);
  const count = cart ? Number(cart.itemCount) : 0;

  // Move focus to the new page's content on navigation, so keyboard and screen-reader users
  // start there rather than at the end of the previous page.
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    main.current?.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }, [location.pathname]);

  const onLogout = async () => {
    setBusy(true);
    await logout();
    setBusy(false);
    navigate("/", { replace: true });
  };

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="site-header">
        <div className="container header-inner">
          <Link to="/" className="brand">
            Mercato
          </Link>
          <nav aria-label="Main">
            <ul className="nav">
              <li>
                <NavLink to="/" end>
                  Home
                </NavLink>
              </li>
              <li>
                <NavLink to="/products">Shop</NavLink>
              </li>
              <li>
                <NavLink to="/coupons" data-testid="nav-coupons">
                  Coupons
                </NavLink>
              </li>
              {hasRole(session, "seller") && (
                <li>
                  <NavLink to="/seller" data-testid="nav-seller">
                    Seller console
                  </NavLink>
                </li>
              )}
              {session ? (
                <>
                  <li>
                    <NavLink to="/orders" data-testid="nav-orders">
                      Orders
                    </NavLink>
                  </li>
                  <li>
                    <NavLink to="/wallet" data-testid="nav-wallet">
                      Wallet
                    </NavLink>
                  </li>
                  <li>
                    <NavLink
                      to="/cart"
                      data-testid="nav-cart"
                      aria-label={count > 0 ? `Cart ${count} ${count === 1 ? "item" : "items"}` : "Cart, empty"}
                    >
                      Cart{count > 0 && " "}
                      {count > 0 && (
                        <span className="cart-count" data-testid="cart-count" aria-hidden="true">
                          {count}
                        </span>
                      )}
                    </NavLink>
                  </li>
                  <li>
                    <NavLink to="/account" data-testid="nav-account">
                      {session.label}
                    </NavLink>
                  </li>
                  <li>
                    <button
                      type="button"
                      className="link-button"
                      onClick={onLogout}
                      disabled={busy}
                      data-testid="nav-logout"
                    >
                      Sign out
                    </button>
                  </li>
                </>
              ) : (
                <>
                  <li>
                    <NavLink to="/login" data-testid="nav-login">
                      Sign in
                    </NavLink>
                  </li>
                  <li>
                    <NavLink to="/register" className="nav-cta" data-testid="nav-register">
                      Create account
                    </NavLink>
                  </li>
                </>
              )}
            </ul>
          </nav>
        </div>
      </header>
      <main id="main" ref={main} tabIndex={-1} className="container">
        <Outlet />
      </main>
      <footer className="site-footer">
        <div className="container">Mercato — handmade goods from independent makers.</div>
      </footer>
    </>
  );
}
