export { default } from '../../screens/admin/Totp';
