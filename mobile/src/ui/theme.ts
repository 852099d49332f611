/** The few colours, sizes and spacings every screen uses (one place to change the look). */
export const colors = {
  primary: '#0f766e',
  primaryDark: '#115e59',
  primarySoft: '#ccfbf1',
  text: '#0f172a',
  muted: '#475569',
  subtle: '#94a3b8',
  border: '#e2e8f0',
  background: '#f1f5f9',
  surface: '#ffffff',
  danger: '#b91c1c',
  dangerSoft: '#fee2e2',
  warning: '#b45309',
  warningSoft: '#fef3c7',
  success: '#15803d',
  successSoft: '#dcfce7',
  info: '#1d4ed8',
  infoSoft: '#dbeafe',
};

export const space = { xs: 4, sm: 8, md: 12, lg: 16, xl: 24, xxl: 32 };
export const radius = { sm: 6, md: 10, lg: 14 };
export const font = { small: 13, body: 15, large: 17, title: 22, hero: 28 };
