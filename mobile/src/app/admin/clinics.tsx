export { default } from '../../screens/admin/Clinics';
