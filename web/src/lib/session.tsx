import { createContext, useContext } from "react";
import type { Role, Station } from "../api/client";
import type { EventStream } from "./live";

export interface Me {
  name: string;
  role: Role;
}

export interface Session {
  me: Me;
  stream: EventStream;
  stations: Station[];
  reloadStations: () => Promise<void>;
  station: string | null; // the header's station selector; null: all stations
  setStation: (s: string | null) => void;
  logout: () => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside the signed-in app");
  return s;
}
