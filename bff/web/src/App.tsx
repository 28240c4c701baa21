// Routes and the page layout: a feature adds a route here, a link in the nav, and a page under
// pages/.

import { createBrowserRouter, Navigate, Outlet, useLocation } from "react-router";
import { hasRole, useSession } from "./auth/session";
import { Layout } from "./components/Layout";
import { CatalogPage } from "./pages/Catalog";
import { HomePage } from "./pages/Home";
import { LoginPage } from "./pages/Login";
import { NotFoundPage } from "./pages/NotFound";
import { ProductPage } from "./pages/Product";
import { RegisterPage } from "./pages/Register";
import { Loading } from "./components/Status";

/** Signed-in pages: anyone else goes to the login page, and comes back after it. */
function RequireSession() {
  const session = useSession();
  const location = useLocation();
  if (!session) return <Navigate to="/login" replace state={{ from: location.pathname }} />;
  return <Outlet />;
}

/** The seller console: only for tokens with the seller role (the BFF checks again). */
function RequireSeller() {
  const session = useSession();
  if (!hasRole(session, "seller")) {
    return (
      <section className="page">
        <h1>Seller console</h1>
        <p>The seller console is for makers with a seller account.</p>
      </section>
    );
  }
  return <Outlet />;
}

export const router = createBrowserRouter([
  {
    element: <Layout />,
    // Shown while a lazily loaded page's code arrives on the first load of its URL.
    hydrateFallbackElement: <Loading />,
    children: [
      { index: true, element: <HomePage /> },
      { path: "products", element: <CatalogPage /> },
      { path: "products/:productId", element: <ProductPage /> },
      { path: "login", element: <LoginPage /> },
      { path: "register", element: <RegisterPage /> },
      {
        path: "coupons",
        lazy: async () => ({ Component: (await import("./pages/Coupons")).CouponsPage }),
      },
      {
        element: <RequireSession />,
        children: [
          {
            path: "cart",
            lazy: async () => ({ Component: (await import("./pages/Cart")).CartPage }),
          },
          {
            path: "checkout",
            lazy: async () => ({ Component: (await import("./pages/Checkout")).CheckoutPage }),
          },
          {
            path: "orders",
            lazy: async () => ({ Component: (await import("./pages/Orders")).OrdersPage }),
          },
          {
            path: "orders/:orderId",
            lazy: async () => ({ Component: (await import("./pages/OrderDetail")).OrderDetailPage }),
          },
          {
            path: "wallet",
            lazy: async () => ({ Component: (await import("./pages/Wallet")).WalletPage }),
          },
          {
            path: "account",
            lazy: async () => ({ Component: (await import("./pages/Account")).AccountPage }),
          },
          {
            path: "seller",
            element: <RequireSeller />,
            children: [
              // The console is a separate chunk: shoppers never download it.
              {
                index: true,
                lazy: async () => ({
                  Component: (await import("./pages/seller/SellerProducts")).SellerProductsPage,
                }),
              },
              {
                path: "products/new",
                lazy: async () => ({
                  Component: (await import("./pages/seller/SellerProductNew")).SellerProductNewPage,
                }),
              },
              {
                path: "products/:productId",
                lazy: async () => ({
                  Component: (await import("./pages/seller/SellerProductEdit")).SellerProductEditPage,
                }),
              },
            ],
          },
        ],
      },
      { path: "*", element: <NotFoundPage /> },
    ],
  },
]);
