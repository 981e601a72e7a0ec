import {
  Alert,
  AppShell,
  Badge,
  Burger,
  Button,
  Center,
  Group,
  Loader,
  NavLink,
  Select,
  Text,
  Title,
} from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { Suspense, lazy, useCallback, useEffect, useMemo, useState, useSyncExternalStore } from "react";
import { ApiError, api, call, can, getToken, onUnauthorized, setToken, type Role, type Station } from "./api/client";
import { ErrorBoundary } from "./components/ErrorBoundary";
import { EventStream } from "./lib/live";
import { navigate, useRoute } from "./lib/router";
import { type Me, type Session, SessionContext } from "./lib/session";
import { LoginPage } from "./pages/Login";

const LivePage = lazy(() => import("./pages/Live"));
const InspectionPage = lazy(() => import("./pages/InspectionDetail"));
const ReviewPage = lazy(() => import("./pages/Review"));
const HistoryPage = lazy(() => import("./pages/History"));
const ModelsPage = lazy(() => import("./pages/Models"));
const TrainPage = lazy(() => import("./pages/Train"));
const AdminPage = lazy(() => import("./pages/Admin"));
const SearchPage = lazy(() => import("./pages/Search"));
const MachinesPage = lazy(() => import("./pages/Machines"));
const MachinePage = lazy(() => import("./pages/Machine"));
const AlertsPage = lazy(() => import("./pages/Alerts"));
const SchedulesPage = lazy(() => import("./pages/Schedules"));
const LinePage = lazy(() => import("./pages/Line"));

interface Page {
  path: string;
  label: string;
  role: Role;
}

export const PAGES: Page[] = [
  { path: "live", label: "Live line", role: "viewer" },
  { path: "line", label: "Line", role: "viewer" },
  { path: "machines", label: "Machines", role: "viewer" },
  { path: "alerts", label: "Alerts", role: "viewer" },
  { path: "schedules", label: "Schedules", role: "viewer" },
  { path: "review", label: "Review queue", role: "operator" },
  { path: "history", label: "History", role: "viewer" },
  { path: "search", label: "Search by image", role: "viewer" },
  { path: "models", label: "Models", role: "viewer" },
  { path: "train", label: "Train", role: "engineer" },
  { path: "admin", label: "Admin", role: "admin" },
];

export function App() {
  const [token, setTok] = useState<string | null>(getToken());
  const [me, setMe] = useState<Me | null>(null);
  const [error, setError] = useState<string | null>(null);

  // the service said the token is no longer valid: forget it
  const forget = useCallback(() => {
    setToken(null);
    setTok(null);
    setMe(null);
  }, []);
  // Sign out: the service ends the token too (a copy of it left anywhere stops working), then it is forgotten
  const logout = useCallback(() => {
    const t = getToken();
    if (t) api.POST("/api/v1/auth/logout", { headers: { Authorization: `Bearer ${t}` } }).catch(() => undefined);
    forget();
  }, [forget]);

  useEffect(() => onUnauthorized(forget), [forget]);

  useEffect(() => {
    if (!token) return;
    setError(null);
    call(api.GET("/api/v1/auth/me")).then(
      (m) => setMe({ name: m.name, role: m.role }),
      (e: ApiError) => (e.status === 401 ? forget() : setError(e.message)),
    );
  }, [token, forget]);

  if (!token) {
    return (
      <LoginPage
        onLogin={(t) => {
          setToken(t);
          setTok(t);
        }}
      />
    );
  }
  if (error) {
    return (
      <Center h="100vh" p="md">
        <Alert color="red" title="The dashboard could not start" maw={520}>
          <Text mb="sm">{error}</Text>
          <Group>
            <Button onClick={() => location.reload()}>Try again</Button>
            <Button variant="default" onClick={logout}>
              Sign out
            </Button>
          </Group>
        </Alert>
      </Center>
    );
  }
  if (!me) {
    return (
      <Center h="100vh">
        <Loader aria-label="Loading" />
      </Center>
    );
  }
  return <Shell me={me} token={token} logout={logout} />;
}

function ConnectionBanner({ stream }: { stream: EventStream }) {
  const state = useSyncExternalStore(stream.subscribeState, stream.getState);
  const [showBack, setShowBack] = useState(false);
  useEffect(() => {
    if (state === "open" && stream.wasLost) {
      setShowBack(true);
      const t = setTimeout(() => setShowBack(false), 5000);
      return () => clearTimeout(t);
    }
  }, [state, stream]);
  if (state === "lost") {
    return (
      <Alert color="red" variant="filled" radius={0} role="alert" data-testid="connection-lost" py={8}>
        <Group justify="space-between" wrap="nowrap">
          <Text size="sm" fw={600}>
            Live connection lost. New inspections are not arriving; reconnecting…
          </Text>
          <Button size="xs" variant="white" color="red" onClick={() => stream.reconnect()}>
            Reconnect now
          </Button>
        </Group>
      </Alert>
    );
  }
  if (showBack) {
    return (
      <Alert color="green" variant="filled" radius={0} role="status" data-testid="connection-back" py={8}>
        <Text size="sm" fw={600}>
          Live connection restored.
        </Text>
      </Alert>
    );
  }
  return null;
}

function Shell({ me, token, logout }: { me: Me; token: string; logout: () => void }) {
  const [opened, { toggle, close }] = useDisclosure();
  const route = useRoute();
  const stream = useMemo(() => new EventStream(token, logout), [token, logout]);
  useEffect(() => () => stream.close(), [stream]);
  const [stations, setStations] = useState<Station[]>([]);
  const [station, setStationState] = useState<string | null>(localStorage.getItem("linewatch.station"));
  const setStation = useCallback((s: string | null) => {
    setStationState(s);
    if (s) localStorage.setItem("linewatch.station", s);
    else localStorage.removeItem("linewatch.station");
  }, []);
  const reloadStations = useCallback(async () => {
    try {
      setStations(await call(api.GET("/api/v1/stations")));
    } catch {
      /* the pages show their own errors */
    }
  }, []);
  useEffect(() => {
    reloadStations();
  }, [reloadStations]);

  const session: Session = { me, stream, stations, reloadStations, station, setStation, logout };
  const pages = PAGES.filter((p) => can(me.role, p.role));
  const top = route.parts[0] ?? "live";
  const page = PAGES.find((p) => p.path === top);

  useEffect(() => {
    if (route.parts.length === 0) navigate("/live", true);
  }, [route.parts.length]);

  let content: React.ReactNode;
  if (top === "inspections" && route.parts[1]) {
    content = <InspectionPage id={Number(route.parts[1])} />;
  } else if (top === "machines" && route.parts[1]) {
    content = <MachinePage key={route.parts[1]} name={decodeURIComponent(route.parts[1])} />;
  } else if (!page) {
    content = <Alert color="yellow" title="Page not found">There is no page at {route.path}.</Alert>;
  } else if (!can(me.role, page.role)) {
    content = (
      <Alert color="yellow" title="Not available for your role" data-testid="forbidden">
        {page.label} needs the {page.role} role or higher; you are signed in as {me.role}.
      </Alert>
    );
  } else {
    content = {
      live: <LivePage />,
      review: <ReviewPage />,
      history: <HistoryPage />,
      search: <SearchPage />,
      models: <ModelsPage />,
      train: <TrainPage />,
      admin: <AdminPage />,
      machines: <MachinesPage />,
      alerts: <AlertsPage />,
      schedules: <SchedulesPage key="schedules" id={route.parts[1] ? Number(route.parts[1]) : null} />,
      line: <LinePage parts={route.parts} query={route.query} />,
    }[page.path];
  }

  return (
    <SessionContext.Provider value={session}>
      <AppShell
        header={{ height: 56 }}
        navbar={{ width: 190, breakpoint: "sm", collapsed: { mobile: !opened } }}
        padding="md"
      >
        <AppShell.Header>
          <Group h="100%" px="md" justify="space-between" wrap="nowrap">
            <Group gap="sm" wrap="nowrap">
              <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Menu" />
              <Title order={1} size="h3" c="blue.8">
                linewatch
              </Title>
            </Group>
            <Group gap="sm" wrap="nowrap">
              <Select
                aria-label="Station"
                placeholder="All stations"
                data={stations.map((s) => s.name)}
                value={station}
                onChange={setStation}
                clearable
                w={170}
                size="sm"
                comboboxProps={{ withinPortal: true }}
                data-testid="station-select"
              />
              <Text size="sm" fw={600} visibleFrom="xs" data-testid="user-name">
                {me.name}
              </Text>
              <Badge variant="filled" color="blue.8" data-testid="user-role">
                {me.role}
              </Badge>
              <Button variant="subtle" size="sm" onClick={logout}>
                Sign out
              </Button>
            </Group>
          </Group>
        </AppShell.Header>
        <AppShell.Navbar p="xs" aria-label="Pages">
          {pages.map((p) => (
            <NavLink
              key={p.path}
              href={`#/${p.path}`}
              label={p.label}
              active={top === p.path}
              onClick={close}
              aria-current={top === p.path ? "page" : undefined}
            />
          ))}
        </AppShell.Navbar>
        <AppShell.Main>
          <ConnectionBanner stream={stream} />
          <ErrorBoundary key={route.path}>
            <Suspense
              fallback={
                <Center p="xl">
                  <Loader aria-label="Loading page" />
                </Center>
              }
            >
              {content}
            </Suspense>
          </ErrorBoundary>
        </AppShell.Main>
      </AppShell>
    </SessionContext.Provider>
  );
}
